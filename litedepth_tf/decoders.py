"""The LiteDepth light decoder (no BatchNorm, ReLU, Glorot init).

From the deepest feature (stride 32) upwards:
  f32 -> 1x1 conv -> 72, ReLU
  up x2 (bilinear), concat f16 (48) -> 1x1 conv -> 24, ReLU      ("feat_16": before the ReLU)
  up x2, concat f8 (24) -> 1x1 conv -> 8, ReLU                     ("feat_8": before the ReLU)
  up x2, concat f4 (16) -> 3x3 conv -> 24, ReLU                    ("feat_4": before the ReLU)
  1x1 conv -> 1, ReLU, clamp to [MIN_DEPTH, MAX_DEPTH]            ("depth", stride 4)
The same function builds the teacher's decoder from wider encoder features.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from litedepth_tf.constants import MAX_DEPTH, MIN_DEPTH


def _conv(filters, kernel, name):
    return layers.Conv2D(filters, kernel, padding="same", kernel_initializer="glorot_uniform", name=name)


def light_decoder(features, channels=(72, 24, 8), logits_dim=24, name="decoder"):
    """features: [f4, f8, f16, f32] Keras tensors. Returns dict(depth, feat_4, feat_8, feat_16)."""
    if len(features) != 4:
        raise ValueError(f"light_decoder expects 4 features (strides 4, 8, 16, 32), got {len(features)}")
    f4, f8, f16, f32 = features
    c32, c16, c8 = channels
    x = layers.ReLU(name=f"{name}_relu32")(_conv(c32, 1, f"{name}_conv32")(f32))

    def fuse(x, skip, filters, kernel, tag):
        up = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up{tag}")(x)
        cat = layers.Concatenate(name=f"{name}_cat{tag}")([up, skip])
        return _conv(filters, kernel, f"{name}_conv{tag}")(cat)

    feat_16 = fuse(x, f16, c16, 1, "16")
    feat_8 = fuse(layers.ReLU(name=f"{name}_relu16")(feat_16), f8, c8, 1, "8")
    feat_4 = fuse(layers.ReLU(name=f"{name}_relu8")(feat_8), f4, logits_dim, 3, "4")
    x = layers.ReLU(name=f"{name}_relu4")(feat_4)
    depth = layers.ReLU(name=f"{name}_depth_relu")(_conv(1, 1, f"{name}_depth_conv")(x))
    depth = ops.clip(depth, MIN_DEPTH, MAX_DEPTH)
    return {"depth": depth, "feat_4": feat_4, "feat_8": feat_8, "feat_16": feat_16}
