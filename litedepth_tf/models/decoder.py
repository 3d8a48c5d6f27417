"""The LiteDepth light decoder (no BatchNorm, ReLU, Glorot init).

From the deepest feature (stride 32) upwards:
  f32 -> 1x1 conv -> 72, ReLU
  up x2 (bilinear, to the skip's size), concat f16 (48) -> 1x1 conv -> 24, ReLU      ("feat_16": before the ReLU)
  up x2, concat f8 (24) -> 1x1 conv -> 8, ReLU                     ("feat_8": before the ReLU)
  up x2, concat f4 (16) -> 3x3 conv -> 24, ReLU                    ("feat_4": before the ReLU)
  1x1 conv -> 1, 40 * sigmoid, clamp to [MIN_DEPTH, MAX_DEPTH]    ("depth", stride 4)

Output head: ``MAX_DEPTH * sigmoid(conv)`` as in the authors' code (``DepthBaseDecodeHead`` with ``scale_up=True``,
max_depth=40), not the ReLU the paper's text suggests. A ReLU head starts with most logits < 0 under Glorot init
(depth clamped to 1 mm, zero gradient) and never recovers: measured here, the demo's validation si-RMSE stayed at
the constant baseline (0.737) with every prediction at 1 mm. The sigmoid starts at ~20 m everywhere with a
non-zero gradient at every pixel.
The same function builds the teacher's decoder from wider encoder features.

Decoder kinds (Table 3 of the paper, `kind=`): ``"mix"`` (above: 3x3 at the finest, stride-4 fusion, 1x1 elsewhere,
the paper's choice), ``"conv3x3"`` (every fusion conv and the stride-32 conv 3x3) and ``"conv1x1"`` (all 1x1). The
depth head stays 1x1 in every kind. `decoder_kind(model)` reads the kind back from a built model's kernels, so a
deploy view or an export always follows the trained model.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from litedepth_tf.common.constants import MAX_DEPTH, MIN_DEPTH


@keras.saving.register_keras_serializable(package="litedepth_tf")
class ResizeLike(layers.Layer):
    """Bilinear resize of `x` to the spatial size of `reference` (the skip feature), as the authors'
    `F.interpolate(x, size=skip.shape[2:])`. Works with unknown H, W (one traced train step for every R-crop
    size); with static shapes the size is a constant, so TFLite gets a plain RESIZE_BILINEAR."""

    def call(self, x, reference):
        static = reference.shape[1:3]
        size = tuple(static) if None not in static else tf.shape(reference)[1:3]
        return tf.image.resize(x, size, method="bilinear")

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


def _conv(filters, kernel, name):
    return layers.Conv2D(filters, kernel, padding="same", kernel_initializer="glorot_uniform", name=name)


# kernel sizes of the (stride-32, 16, 8, 4) convs per decoder kind
DECODER_KERNELS = {"mix": (1, 1, 1, 3), "conv3x3": (3, 3, 3, 3), "conv1x1": (1, 1, 1, 1)}
DECODER_KINDS = tuple(DECODER_KERNELS)


def decoder_kind(model, name="decoder") -> str:
    """The kind of the decoder in a built `model` (its `<name>_conv32/16/8/4` kernel sizes)."""
    kernels = tuple(int(model.get_layer(f"{name}_conv{tag}").kernel_size[0]) for tag in ("32", "16", "8", "4"))
    for kind, want in DECODER_KERNELS.items():
        if kernels == want:
            return kind
    raise ValueError(f"model {model.name!r}: decoder kernels {kernels} match no kind of {DECODER_KINDS}")


def light_decoder(features, channels=(72, 24, 8), logits_dim=24, name="decoder", kind="mix", max_depth=MAX_DEPTH):
    """features: [f4, f8, f16, f32] Keras tensors. Returns dict(depth, feat_4, feat_8, feat_16). ``max_depth``:
    the head's range, ``max_depth * sigmoid`` (40 m for MAI; 80 m for KITTI's ``student_80m`` preset)."""
    if kind not in DECODER_KERNELS:
        raise ValueError(f"decoder kind must be one of {DECODER_KINDS}, got {kind!r}")
    k32, k16, k8, k4 = DECODER_KERNELS[kind]
    if len(features) != 4:
        raise ValueError(f"light_decoder expects 4 features (strides 4, 8, 16, 32), got {len(features)}")
    f4, f8, f16, f32 = features
    c32, c16, c8 = channels
    x = layers.ReLU(name=f"{name}_relu32")(_conv(c32, k32, f"{name}_conv32")(f32))

    def fuse(x, skip, filters, kernel, tag):
        up = ResizeLike(name=f"{name}_up{tag}")(x, skip)
        cat = layers.Concatenate(name=f"{name}_cat{tag}")([up, skip])
        return _conv(filters, kernel, f"{name}_conv{tag}")(cat)

    feat_16 = fuse(x, f16, c16, k16, "16")
    feat_8 = fuse(layers.ReLU(name=f"{name}_relu16")(feat_16), f8, c8, k8, "8")
    feat_4 = fuse(layers.ReLU(name=f"{name}_relu8")(feat_8), f4, logits_dim, k4, "4")
    x = layers.ReLU(name=f"{name}_relu4")(feat_4)
    depth = layers.Activation("sigmoid", name=f"{name}_depth_sigmoid")(_conv(1, 1, f"{name}_depth_conv")(x))
    depth = ops.clip(depth * max_depth, MIN_DEPTH, max_depth)
    return {"depth": depth, "feat_4": feat_4, "feat_8": feat_8, "feat_16": feat_16}
