"""The LiteDepth student: a train view and a deploy view that share (or fold) the same weights.

* `build_student()` -> the **train view**: raw RGB 0..255 at any size divisible by 32 (the pipeline
  already resized the crop) -> normalise -> MobileNetV3-Small encoder -> light decoder -> dict of
  `depth` (stride 4, metres) and the pre-activation decoder features `feat_4`, `feat_8`, `feat_16`.
* `build_deploy_model(train_model)` -> the **deploy view**: `[1, 480, 640, 3]` raw RGB -> resize to
  128x160 inside the graph (fast downsampling) -> train view (inference: the depth clamped to [1e-3, max]) ->
  depth 32x40 -> resize to `[1, 480, 640, 1]`, ``final_resize="nearest"`` by default (the authors'
  ``encode_decode``: ``resize(out, gt_target_shape, mode='nearest')``, PyTorch's ``floor(i * in / out)``, i.e.
  TensorFlow's ``resize_nearest_neighbor`` without half-pixel centres) or ``"bilinear"`` (half-pixel centres).
  Other frame sizes: ``frame_size=(H, W)`` (e.g. KITTI 352x1216) and the network size (default: the paper's
  480x640 -> 128x160 ratio rounded to /32, `common.sizes.network_size`: 352x1216 -> 96x320).
* ``max_depth``: the depth head's clamp at inference, 40 m by default; preset ``student_80m`` (KITTI, DIODE) uses
  80 m. The deploy view keeps the train view's range (``model.depth_range``). ``head``: "relu" (the paper) or
  "sigmoid" (`litedepth_tf.models.decoder`).
  With `merge_normalization=True` (default) the normalisation is folded into the first conv
  (`litedepth_tf.models.normalization`); the result is a weight *snapshot*. With False it wraps `train_model` itself.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf
from keras import layers, ops

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH, NORM_MEAN, NORM_STD
from litedepth_tf.common.sizes import network_size
from litedepth_tf.models.mobilenet import build_mobilenet_encoder
from litedepth_tf.models.decoder import decoder_kind, head_kind, light_decoder
from litedepth_tf.models.normalization import merge_first_conv

ENCODER_NAME = "encoder"


def build_student(weights=None, input_shape=(None, None, 3), encoder_weights=None, name="student",
                  decoder="mix", max_depth=MAX_DEPTH, head="relu") -> keras.Model:
    """The train view. `encoder_weights`: None | "imagenet" | path (encoder only, before training).
    `weights`: path to full student weights (`.weights.h5`) saved by the trainer, loaded strictly.
    `decoder`: the decoder kind (`litedepth_tf.models.decoder.DECODER_KINDS`; presets `student_conv3x3` /
    `student_conv1x1` build the non-default ones). `max_depth`: the depth head's range in metres (see the
    module docstring; preset `student_80m`)."""
    encoder = build_mobilenet_encoder(input_shape=input_shape, weights=encoder_weights, name=ENCODER_NAME)
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / NORM_STD, offset=-NORM_MEAN / NORM_STD, name="normalize")(inputs)
    outputs = light_decoder(encoder(x), kind=decoder, max_depth=max_depth, head=head)
    model = keras.Model(inputs, outputs, name=name)
    model.depth_range = float(max_depth)
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: keras.Model, path) -> None:
    """Loads a `.weights.h5` file; a missing file or a shape mismatch raises an error naming the path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}")
    try:
        model.load_weights(path)
    except Exception as err:  # noqa: BLE001 - add the file name to Keras' message
        raise ValueError(f"Could not load weights from {path!r} into {model.name!r}: {err}") from err


def _merged_copy(train_model: keras.Model, net_size=None) -> keras.Model:
    """A copy of the train view at ``net_size`` (default 128x160) with the normalisation folded into the first
    conv."""
    nh, nw = net_size or network_size((INPUT_HEIGHT, INPUT_WIDTH))
    encoder = train_model.get_layer(ENCODER_NAME)
    merged_encoder = merge_first_conv(encoder, (nh, nw, 3), NORM_MEAN, NORM_STD)
    inputs = keras.Input(shape=(nh, nw, 3), name="image")
    outputs = light_decoder(merged_encoder(inputs), kind=decoder_kind(train_model),
                            max_depth=getattr(train_model, "depth_range", MAX_DEPTH), head=head_kind(train_model))
    model = keras.Model(inputs, outputs, name=train_model.name + "_merged")
    for layer in model.layers:
        if layer.weights and layer.name != ENCODER_NAME:
            layer.set_weights(train_model.get_layer(layer.name).get_weights())
    return model


def can_merge_normalization(train_model: keras.Model) -> bool:
    """Whether the normalisation can be folded into the model's first conv: the student (MobileNetV3 encoder with
    its first conv named `conv`) can; the Swin teachers (patch embedding + LayerNorm) cannot."""
    try:
        train_model.get_layer(ENCODER_NAME).get_layer("conv")
    except ValueError:
        return False
    return True


FINAL_RESIZES = ("nearest", "bilinear")


@keras.saving.register_keras_serializable(package="litedepth_tf")
class ResizeDepth(layers.Layer):
    """The deploy view's last op: the stride-4 depth ``[1, h, w, 1]`` to the frame ``size``. "nearest": PyTorch's
    ``mode='nearest'`` (source ``floor(i * h / H)``: TensorFlow's resize without half-pixel centres, TFLite
    RESIZE_NEAREST_NEIGHBOR); "bilinear": half-pixel centres (``tf.image.resize``, TFLite RESIZE_BILINEAR)."""

    def __init__(self, size, method: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        if method not in FINAL_RESIZES:
            raise ValueError(f"final_resize must be one of {FINAL_RESIZES}, got {method!r}")
        self.size, self.method = (int(size[0]), int(size[1])), method

    def call(self, depth):
        if self.method == "nearest":
            return tf.raw_ops.ResizeNearestNeighbor(images=depth, size=tf.constant(self.size, tf.int32),
                                                    align_corners=False, half_pixel_centers=False)
        return tf.image.resize(depth, self.size, method="bilinear")

    def compute_output_shape(self, shape):
        return (shape[0], *self.size, shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "method": self.method}


def build_deploy_model(train_model: keras.Model, merge_normalization: bool = True, name="litedepth",
                       frame_size=(INPUT_HEIGHT, INPUT_WIDTH), net_size=None, final_resize: str = "nearest"
                       ) -> keras.Model:
    """[1, H, W, 3] raw RGB float32 -> [1, H, W, 1] depth in metres, (H, W) = ``frame_size`` (480x640 by
    default); the network runs at ``net_size`` (default `common.sizes.network_size(frame_size)`, 128x160 for
    480x640; each side divisible by 32); ``final_resize``: "nearest" (the authors') or "bilinear"."""
    if final_resize not in FINAL_RESIZES:
        raise ValueError(f"final_resize must be one of {FINAL_RESIZES}, got {final_resize!r}")
    if merge_normalization and not can_merge_normalization(train_model):
        raise ValueError(f"model {train_model.name!r}: the normalisation can only be merged into the student's first "
                         "conv; build its deploy view with merge_normalization=False")
    fh, fw = (int(v) for v in frame_size)
    nh, nw = (int(v) for v in (net_size or network_size((fh, fw))))
    if nh % 32 or nw % 32:
        raise ValueError(f"network size {nh}x{nw}: each side must be divisible by 32 (the encoder's stride)")
    core = _merged_copy(train_model, (nh, nw)) if merge_normalization else train_model
    inputs = keras.Input(shape=(fh, fw, 3), batch_size=1, name="image")
    small = ops.image.resize(inputs, (nh, nw), interpolation="bilinear")
    depth = core(small, training=False)["depth"]
    depth = ResizeDepth((fh, fw), final_resize, name="resize_depth")(depth)
    deploy = keras.Model(inputs, depth, name=name)
    deploy.depth_range = float(getattr(train_model, "depth_range", MAX_DEPTH))
    deploy.final_resize = final_resize
    return deploy


def check_image_batch(images, expected_hw=None, divisible_by: int = 32, what: str = "images") -> None:
    """Raises a ValueError naming the expected shape unless `images` is [N, H, W, 3] (H, W divisible by
    `divisible_by`, or equal to `expected_hw`). Used by every entry point before a model sees the data."""
    shape = tuple(getattr(images, "shape", ()))
    if expected_hw is not None:
        want = f"[N, {expected_hw[0]}, {expected_hw[1]}, 3] raw RGB"
        ok = len(shape) == 4 and tuple(shape[1:]) == (*expected_hw, 3)
    else:
        want = f"[N, H, W, 3] raw RGB with H and W divisible by {divisible_by}"
        ok = len(shape) == 4 and shape[3] == 3 and all(d is None or d % divisible_by == 0 for d in shape[1:3])
    if not ok:
        raise ValueError(f"{what}: expected shape {want}, got {shape}")
