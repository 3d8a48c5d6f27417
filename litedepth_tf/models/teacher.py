"""The LiteDepth teacher: a Swin Transformer encoder + the student's light decoder, widened.

`build_teacher(preset)` returns a Keras model with exactly the student's interface (`WORKSPACE.md`):
raw RGB 0..255 `[B, H, W, 3]` -> dict `depth` `[B, H/4, W/4, 1]` (metres, ReLU; clamped to [1e-3, 40] at inference) and the
pre-activation decoder features `feat_4`, `feat_8`, `feat_16` (for `litedepth_tf.training.distill`).

* **Input**: the same downsampled raw image the student gets (128x160 for a 480x640 frame; the R-crop sizes in
  training), as in the authors' `DistillWrapper` (`imgs_4x_teacher`): the teacher's `feat_4/8/16` then have the
  student's spatial sizes and the affinity matrices line up pixel for pixel. The teacher normalises inside with
  the ImageNet mean/std (what Swin was pre-trained with), not the student's 127.5.
* **Encoder**: `litedepth_tf.models.swin` (tiny / base / large, window 7; micro for tests), drop-path 0.3.
  `encoder_weights`: a `.npz` from `tools/convert_swin_weights.py` (ImageNet-22k Swin-L for the paper's teacher).
* **Decoder**: `light_decoder` (the student's ``DenseDepthHeadLightMobile`` structure: 1x1 fusion convs, a 3x3 at
  stride 4, the ReLU head), 96 at stride 32, 64 at 16, 32 at 8, 24 at 4 (`channels=(96, 64, 32), logits_dim=24`)
  for every real preset. The authors' released teacher (`configs_distll/swinl_w7_teacher.py`, lines 66-68:
  `in_channels=[192, 384, 768, 1536]`, `up_sample_channels=[0, 48, 192, 768]`, `logits_dim=24`) is wider:
  768 at stride 32, 192 at 16, 48 at 8; this project keeps the narrower decoder (docs/fidelity.md, "left as is").
* **Training** (`flags/teacher.cfg`): the student's losses with the teacher config's fixed weights 1 / 0.2 / 2.5 /
  0.6, AdamW lr 2e-4, weight decay 0.01 (the authors' `swinl_w7_teacher.py`).

Sizes: `teacher_summary(preset)` gives parameters and FLOPs (TF profiler on a concrete function, 1 FLOP =
1 multiply or 1 add, so MACs ~= FLOPs / 2) and the analytic MAC count `analytic_macs`.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from litedepth_tf.models.decoder import light_decoder
from litedepth_tf.models.swin import SWIN_PRESETS, build_swin_encoder, count_params, load_weights_strict

ENCODER_NAME = "encoder"

# Decoder widths (c32, c16, c8) and the stride-4 width (logits_dim), per preset.
TEACHER_DECODER = {
    "micro": dict(channels=(32, 16, 8), logits_dim=16),
    "tiny": dict(channels=(96, 64, 32), logits_dim=24),
    "base": dict(channels=(96, 64, 32), logits_dim=24),
    "large": dict(channels=(96, 64, 32), logits_dim=24),
}
TEACHER_PRESETS = tuple(TEACHER_DECODER)

# AdamW for the teacher (authors: lr 2e-4, weight decay 0.01, no decay on the relative position bias tables and the
# norms). Keras matches these against variable names:
#   optimizer.exclude_from_weight_decay(var_names=TEACHER_NO_WEIGHT_DECAY)   (before the optimizer is built)
TEACHER_LEARNING_RATE = 2e-4
TEACHER_WEIGHT_DECAY = 0.01
TEACHER_NO_WEIGHT_DECAY = ("relative_position_bias_table", "gamma", "beta")


def build_teacher(preset="tiny", weights=None, encoder_weights=None, input_shape=(None, None, 3),
                  drop_path_rate=None, name="teacher", head="relu") -> keras.Model:
    """Swin encoder + widened light decoder. `weights`: a full teacher `.weights.h5` saved by the trainer (strict:
    a wrong preset raises an error naming the first mismatching variable). `encoder_weights`: converted Swin
    weights (`.npz`) for the encoder only, before training."""
    if preset not in TEACHER_DECODER:
        raise ValueError(f"Unknown teacher preset {preset!r}; choose one of {list(TEACHER_DECODER)}")
    encoder = build_swin_encoder(preset, input_shape=input_shape, weights=encoder_weights,
                                 drop_path_rate=drop_path_rate, name=ENCODER_NAME)
    inputs = keras.Input(shape=input_shape, name="image")
    outputs = light_decoder(encoder(inputs), head=head, **TEACHER_DECODER[preset])
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_weights_strict(model, weights)
    return model


# ---- size -------------------------------------------------------------------------------------------------------


def measure_flops(model: keras.Model, input_shape) -> int:
    """FLOPs of one forward pass (batch 1) from the TF profiler on a concrete function."""

    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=fn.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=opts)
    return int(info.total_float_ops)


def analytic_macs(preset: str, height: int, width: int) -> int:
    """Multiply-accumulates of the teacher (encoder linear layers + attention matmuls on padded windows +
    decoder convs), batch 1."""
    cfg = SWIN_PRESETS[preset]
    c, ws = cfg["embed_dim"], cfg["window_size"]
    h, w = math.ceil(height / 4), math.ceil(width / 4)
    macs = h * w * 4 * 4 * 3 * c  # patch embedding
    sizes = []
    for i, depth in enumerate(cfg["depths"]):
        dim = c * 2**i
        hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
        n = h * w
        per_block = hp * wp * dim * 3 * dim + hp * wp * dim * dim  # qkv and proj run on padded tokens
        per_block += 2 * hp * wp * ws * ws * dim  # q k^T and attn v
        per_block += n * 2 * 4 * dim * dim  # MLP
        macs += depth * per_block
        sizes.append((h, w, dim))
        if i < len(cfg["depths"]) - 1:
            h, w = math.ceil(h / 2), math.ceil(w / 2)
            macs += h * w * 4 * dim * 2 * dim  # patch merging
    dec = TEACHER_DECODER[preset]
    (h4, w4, c4), (h8, w8, c8), (h16, w16, c16), (h32, w32, c32) = sizes
    d32, d16, d8 = dec["channels"]
    macs += h32 * w32 * c32 * d32
    macs += h16 * w16 * (d32 + c16) * d16
    macs += h8 * w8 * (d16 + c8) * d8
    macs += h4 * w4 * 9 * (d8 + c4) * dec["logits_dim"]
    macs += h4 * w4 * dec["logits_dim"]
    return int(macs)


def teacher_summary(preset: str, height: int = 128, width: int = 160, flops: bool = True) -> dict:
    model = build_teacher(preset, input_shape=(height, width, 3))
    out = {
        "preset": preset,
        "input": [height, width],
        "params": count_params(model),
        "encoder_params": count_params(model.get_layer(ENCODER_NAME)),
        "analytic_gmacs": analytic_macs(preset, height, width) / 1e9,
    }
    if flops:
        out["profiler_gflops"] = measure_flops(model, (height, width, 3)) / 1e9
    return out
