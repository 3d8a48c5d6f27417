"""The LiteDepth light decoder (no BatchNorm, ReLU, Glorot init), as the authors' ``DenseDepthHeadLightMobile``.

From the deepest feature (stride 32) upwards:
  f32 -> 1x1 conv -> 72, ReLU
  up x2 (bilinear, align_corners=True, to the skip's size), concat f16 (48) -> 1x1 conv -> 24, ReLU ("feat_16": before the ReLU)
  up x2, concat f8 (24) -> 1x1 conv -> 8, ReLU                     ("feat_8": before the ReLU)
  up x2, concat f4 (16) -> 3x3 conv -> 24, ReLU                    ("feat_4": before the ReLU)
  1x1 conv -> 1, ReLU; at inference clamped to [MIN_DEPTH, max_depth] ("depth", stride 4)

Output head (paper Sec. 3.1: "passed by a ReLU function"; the authors' config ``scale_up=False``): ``ReLU(conv)``.
The loss sees it unclamped during training (the authors' ``forward_train``); inference (``training=False``: the
deploy view, evaluation, export) clamps it to ``[MIN_DEPTH, max_depth]`` as the authors' ``encode_decode`` does.
Why this project once used ``40 * sigmoid`` instead: a ReLU head trained from a random encoder seemed to die. It
was the encoder's BatchNorm (Keras' momentum 0.999 and no precise BatchNorm: validation ran on near-initial
statistics), which sank the sigmoid head just as far (docs/fidelity.md); with momentum 0.99 and precise BatchNorm
the ReLU trains. The trainer still starts the head's bias at the training set's median depth (`set_head_bias`),
which puts every pixel in the ReLU's linear part at step 0 (``--head_bias_init=zero`` keeps Keras' zero bias).
``head="sigmoid"`` builds the head this project used before, ``max_depth * sigmoid(conv)`` (same weights).
The same function builds the teacher's decoder from wider encoder features.

Decoder kinds (Table 3 of the paper, `kind=`): ``"mix"`` (above: 3x3 at the finest, stride-4 fusion, 1x1 elsewhere,
the paper's choice), ``"conv3x3"`` (every fusion conv and the stride-32 conv 3x3) and ``"conv1x1"`` (all 1x1). The
depth head stays 1x1 in every kind. `decoder_kind(model)` reads the kind back from a built model's kernels, so a
deploy view or an export always follows the trained model.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from litedepth_tf.common.constants import MAX_DEPTH, MIN_DEPTH


@keras.saving.register_keras_serializable(package="litedepth_tf")
class ResizeLike(layers.Layer):
    """Bilinear resize with ``align_corners=True`` of `x` to the spatial size of `reference` (the skip feature), as
    the authors' ``F.interpolate(x, size=skip.shape[2:], mode='bilinear', align_corners=True)``. Works with unknown
    H, W (one traced train step for every R-crop size); with static shapes the size is a constant, so TFLite gets a
    plain RESIZE_BILINEAR (align_corners=true)."""

    def call(self, x, reference):
        static = reference.shape[1:3]
        size = tf.constant(tuple(static), tf.int32) if None not in static else tf.shape(reference)[1:3]
        return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=True, half_pixel_centers=False)

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


HEADS = ("relu", "sigmoid")


@keras.saving.register_keras_serializable(package="litedepth_tf")
class DepthHead(layers.Layer):
    """The depth head's activation: ``relu`` (training: ReLU; inference: ReLU clamped to ``[min_depth, max_depth]``)
    or ``sigmoid`` (``max_depth * sigmoid``, clamped to ``[min_depth, max_depth]`` always)."""

    def __init__(self, kind="relu", max_depth=MAX_DEPTH, min_depth=MIN_DEPTH, **kwargs):
        super().__init__(**kwargs)
        if kind not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
        self.kind, self.max_depth, self.min_depth = kind, float(max_depth), float(min_depth)

    def call(self, x, training=None):
        if self.kind == "sigmoid":
            return ops.clip(ops.sigmoid(x) * self.max_depth, self.min_depth, self.max_depth)
        depth = ops.relu(x)
        return depth if training else ops.clip(depth, self.min_depth, self.max_depth)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "max_depth": self.max_depth, "min_depth": self.min_depth}


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


def light_decoder(features, channels=(72, 24, 8), logits_dim=24, name="decoder", kind="mix", max_depth=MAX_DEPTH,
                  head="relu"):
    """features: [f4, f8, f16, f32] Keras tensors. Returns dict(depth, feat_4, feat_8, feat_16). ``max_depth``:
    the head's clamp (40 m for MAI; 80 m for KITTI's ``student_80m`` preset); ``head``: "relu" (the paper) or
    "sigmoid" (module docstring)."""
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
    depth = DepthHead(head, max_depth, name=f"{name}_depth_head")(_conv(1, 1, f"{name}_depth_conv")(x))
    return {"depth": depth, "feat_4": feat_4, "feat_8": feat_8, "feat_16": feat_16}


def head_kind(model, name="decoder") -> str:
    """The head of a built `model` ("relu" or "sigmoid")."""
    return model.get_layer(f"{name}_depth_head").kind


def set_head_bias(model, depth: float, name="decoder") -> None:
    """Starts the depth head at ``depth`` metres everywhere the conv's input is 0: its bias := ``depth`` (ReLU
    head) or the logit of ``depth / max_depth`` (sigmoid head)."""
    layer = model.get_layer(f"{name}_depth_conv")
    head = model.get_layer(f"{name}_depth_head")
    kernel, bias = layer.get_weights()
    if head.kind == "relu":
        value = float(depth)
    else:
        p = min(max(float(depth) / head.max_depth, 1e-4), 1 - 1e-4)
        value = float(np.log(p / (1 - p)))
    layer.set_weights([kernel, np.full_like(bias, value)])
