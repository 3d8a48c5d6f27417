"""Structure-aware distillation (LiteDepth, Table 6): match the student's pixel-affinity structure to the teacher's.

For each decoder level (`feat_4`, `feat_8`, `feat_16`, pre-activation, as in the authors' `DistillWrapper`):

1. bring the teacher feature to the student's resolution (bilinear; with the teacher fed the student's input size,
   see `litedepth_tf.models.teacher`, the sizes already agree and nothing is resized). Channel counts may differ: only
   the HW x HW affinities are compared;
2. the valid-GT mask is brought from the depth map's resolution to the feature's as the authors' `DistillWrapper`
   does (`mask_mode="bilinear"`, default): the ground truth resized **bilinearly with align_corners=True** to the
   feature size, valid where the result is > 0, i.e. where any ground-truth pixel it reads is valid (at 20 %
   random holes ~99 % of the feature pixels stay valid, where a nearest sample keeps ~80 %). Resizing the 1/0 mask
   instead of the depth gives the same support (non-negative weights). Alternatives: `"nearest"` (the GT pixel at
   `floor(i * in / out)`, PyTorch's nearest: what `SimilarityMSELoss` alone would do), `"any"` (valid if any GT
   pixel in the feature pixel's footprint is: max-pool-like, keeps thin structures) and `"all"` (every GT pixel in
   its footprint is valid: min-pool-like, conservative at holes);
3. L2-normalise every pixel's feature vector over channels (eps 1e-12, as `F.normalize`);
4. cosine affinities `A = F F^T` over the valid pixels, for student and teacher;
5. loss per image = mean over valid pairs of `(A_s - A_t)^2`; mean over images with at least one valid pixel
   (the authors divide the sum by the batch size, which is the same while every image has a valid pixel; an image
   without one gives them NaN, here it is left out, and a batch without any valid pixel gives 0); times `weight`
   (10, the authors' `distill_weight`).

Memory: the dense affinity is `(HW)^2` floats per image and per matrix (student, teacher, difference, plus the
same again for the gradient). At the deploy size the finest level is 32x40 -> 1280 x 1280 = 6.5 MB per image
per matrix: fine (batch 16: ~0.1 GB per matrix). It grows with the fourth power of the side: the R-crop sizes
stay at or below 32x40, but a 480x640 input (feat_4 at 120x160) would need 19200^2 * 4 B = 1.5 GB per image per
matrix and runs out of memory. Two ways out, both options of `structure_affinity_loss` / `make_distill_fn`:

* `max_pixels=N`: masked average pooling of both features (area resampling of `f * m` divided by that of `m`; a
  pooled pixel is valid if any of its pixels was) by the smallest integer factor `k` with `HW / k^2 <= N`, before
  the affinities: approximate, memory `N^2`;
* `method="gram"`: exact and never forms an HW x HW matrix, using
  `sum_ij (s_i.s_j - t_i.t_j)^2 = |S^T S|^2 - 2 |S^T T|^2 + |T^T T|^2` (Frobenius norms of C x C matrices; invalid
  rows zeroed). Memory O(HW * C + C^2); the three terms are large and nearly cancel, so it is computed in float64.

Other distillers (Table 6 of the paper), `distiller=` of `make_distill_fn`, at the same three levels:

* ``"l2"`` (Ignatov et al. 2021): the mean over pixels and channels of ``(a(s) - t)^2``;
* ``"channel"`` (channel-wise distillation, Shu et al., ICCV 2021): every channel's spatial map becomes a
  distribution ``softmax(x / tau)`` over its H*W pixels; the loss is ``tau^2 * KL(p_t || p_s)`` averaged over the
  channels and images (tau = 4 by default, `CHANNEL_TAU`).

Both compare channel by channel, so where the student's and the teacher's widths differ (every level of the demo
teacher, two of the Swin teachers'), a trainable 1x1 conv ``a`` maps the student feature to the teacher's width
(as Shu et al. do); the hook exposes those variables as ``trainable_variables`` (the trainer trains and
checkpoints them with the model). Where widths agree, ``a`` is the identity. The structure-aware distiller
compares HW x HW affinities and needs no adapter.

`ramp=True` multiplies the weight by ``min(0.999, 1 - 101 / (step + 101))`` (`ramp_factor`; the authors' code):
0 at step 0, 0.5 at step 101, 0.999 from step 100 899 on.

`make_distill_fn(teacher)` returns the trainer hook `extra_loss_fn(student_outputs, batch) ->
{"distill_4", "distill_8", "distill_16"}` (already weighted); the teacher runs with `training=False` under
`tf.stop_gradient`, so it is frozen (inference-mode, no gradient) whatever the trainer does.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from litedepth_tf.models.teacher import build_teacher

LEVELS = ("feat_4", "feat_8", "feat_16")
DISTILL_WEIGHT = 10.0
MASK_MODES = ("bilinear", "nearest", "any", "all")
METHODS = ("dense", "gram")
TEACHER_FLAG = "--teacher_weights"
DISTILLERS = ("structure", "l2", "channel")
CHANNEL_TAU = 4.0


def ramp_factor(step):
    """The authors' distillation ramp: min(0.999, 1 - 101 / (step + 101)) (works on ints, arrays and tensors)."""
    if isinstance(step, (tf.Tensor, tf.Variable)):
        step = tf.cast(step, tf.float32)
        return tf.minimum(0.999, 1.0 - 101.0 / (step + 101.0))
    return np.minimum(0.999, 1.0 - 101.0 / (np.asarray(step, np.float64) + 101.0))


def _match_size(s, t):
    if s.shape[1:3] != t.shape[1:3] or None in tuple(s.shape[1:3]):
        t = tf.image.resize(t, tf.shape(s)[1:3], method="bilinear")
    return t


def l2_feature_loss(student_feat, teacher_feat):
    """Mean over pixels, channels and images of (s - t)^2 (same widths: adapt the student first); float32."""
    s, t = tf.cast(student_feat, tf.float32), tf.cast(teacher_feat, tf.float32)
    return tf.reduce_mean(tf.square(s - _match_size(s, t)))


def channel_wise_loss(student_feat, teacher_feat, tau: float = CHANNEL_TAU):
    """Shu et al. 2021: tau^2 * mean over images and channels of KL(softmax(t_c / tau) || softmax(s_c / tau)),
    the softmax over each channel's H*W pixels (same widths: adapt the student first); float32."""
    s, t = tf.cast(student_feat, tf.float32), tf.cast(teacher_feat, tf.float32)
    t = _match_size(s, t)
    b, c = tf.shape(s)[0], tf.shape(s)[-1]
    s = tf.reshape(tf.transpose(s, [0, 3, 1, 2]), [b, c, -1]) / tau
    t = tf.reshape(tf.transpose(t, [0, 3, 1, 2]), [b, c, -1]) / tau
    log_ps, log_pt = tf.nn.log_softmax(s, axis=-1), tf.nn.log_softmax(t, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1)  # [B, C]
    return tau ** 2 * tf.reduce_mean(kl)


class FeatureAdapters(keras.layers.Layer):
    """One 1x1 conv per level mapping the student's width to the teacher's (identity where they agree)."""

    def __init__(self, student_widths: dict, teacher_widths: dict, **kwargs):
        super().__init__(**kwargs)
        self.levels = tuple(student_widths)
        for level in self.levels:
            cs, ct = int(student_widths[level]), int(teacher_widths[level])
            conv = None
            if cs != ct:
                conv = keras.layers.Conv2D(ct, 1, name=f"adapt_{level}")
                conv.build((None, None, None, cs))
            setattr(self, f"adapt_{level}", conv)  # attributes: tf.train.Checkpoint follows them
        self.built = True

    def adapt(self, feat, level):
        conv = getattr(self, f"adapt_{level}")
        return feat if conv is None else conv(feat)


def _widths(model, levels):
    out = model.output
    return {level: out[level].shape[-1] for level in levels}


def resize_mask(valid, size, mode: str = "bilinear"):
    """valid [B, h, w, 1] (1/0) -> [B, H, W, 1] float32 at `size` (see module docstring for the modes)."""
    valid = tf.cast(valid, tf.float32)
    if mode == "bilinear":
        resized = tf.raw_ops.ResizeBilinear(images=valid, size=size, align_corners=True, half_pixel_centers=False)
        return tf.cast(resized > 0.0, tf.float32)
    if mode == "nearest":
        return tf.raw_ops.ResizeNearestNeighbor(images=valid, size=size, align_corners=False,
                                                half_pixel_centers=False)
    frac = tf.image.resize(valid, size, method="area")
    if mode == "any":
        return tf.cast(frac > 0.0, tf.float32)
    if mode == "all":
        return tf.cast(frac > 1.0 - 1e-4, tf.float32)
    raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mode!r}")


def _masked_pool(feat, mask, max_pixels: int):
    """Masked average pooling by the smallest integer factor k with H*W/k^2 <= max_pixels (dynamic shapes)."""
    shape = tf.shape(feat)
    h, w = shape[1], shape[2]
    ratio = tf.cast(h * w, tf.float32) / float(max_pixels)
    k = tf.maximum(1, tf.cast(tf.math.ceil(tf.sqrt(ratio) - 1e-6), tf.int32))
    size = tf.stack([(h + k - 1) // k, (w + k - 1) // k])
    num = tf.image.resize(feat * mask, size, method="area")
    den = tf.image.resize(mask, size, method="area")
    return num / tf.maximum(den, 1e-12), tf.cast(den > 0.0, tf.float32)


def _normalize(feat):
    return feat / tf.maximum(tf.norm(feat, axis=-1, keepdims=True), 1e-12)


def structure_affinity_loss(student_feat, teacher_feat, valid, mask_mode="bilinear", max_pixels=None,
                            method="dense"):
    """Unweighted structure-aware distillation loss of one level; float32 scalar.

    student_feat [B, H, W, Cs], teacher_feat [B, Ht, Wt, Ct], valid [B, h, w, 1] (1 = valid GT, any size)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    s = tf.cast(student_feat, tf.float32)
    t = tf.cast(teacher_feat, tf.float32)
    size = tf.shape(s)[1:3]
    if s.shape[1:3] != t.shape[1:3] or None in tuple(s.shape[1:3]):
        t = tf.image.resize(t, size, method="bilinear")
    mask = resize_mask(valid, size, mask_mode)
    if max_pixels is not None:
        s, mask_s = _masked_pool(s, mask, max_pixels)
        t, _ = _masked_pool(t, mask, max_pixels)
        mask = mask_s
    b = tf.shape(s)[0]
    m = tf.reshape(mask, [b, -1, 1])  # [B, N, 1]
    s = tf.reshape(_normalize(s), [b, -1, tf.shape(s)[-1]]) * m
    t = tf.reshape(_normalize(t), [b, -1, tf.shape(t)[-1]]) * m
    n_valid = tf.reduce_sum(m, axis=[1, 2])  # [B]
    if method == "dense":
        diff = tf.matmul(s, s, transpose_b=True) - tf.matmul(t, t, transpose_b=True)  # invalid rows/cols are 0
        sq = tf.reduce_sum(tf.square(diff), axis=[1, 2])
    else:
        s64, t64 = tf.cast(s, tf.float64), tf.cast(t, tf.float64)

        def fro2(a, c):
            return tf.reduce_sum(tf.square(tf.matmul(a, c, transpose_a=True)), axis=[1, 2])

        sq = tf.cast(tf.maximum(fro2(s64, s64) - 2.0 * fro2(s64, t64) + fro2(t64, t64), 0.0), tf.float32)
    has = tf.cast(n_valid > 0, tf.float32)
    per_image = sq / tf.maximum(tf.square(n_valid), 1.0)
    return tf.reduce_sum(per_image * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def make_distill_fn(teacher, weight: float = DISTILL_WEIGHT, levels=LEVELS, mask_mode="bilinear",
                    max_pixels=None, method="dense", distiller="structure", student=None, ramp=False, step=None,
                    tau: float = CHANNEL_TAU):
    """The trainer hook: `extra_loss_fn(student_outputs, batch) -> {"distill_4": ..., "distill_8": ...,
    "distill_16": ...}`, each already multiplied by `weight` (and by `ramp_factor(step())` with `ramp`; `step`: a
    callable returning the trainer's step variable). The teacher sees `batch["image"]` (the student's raw input),
    runs in inference mode and gets no gradient. `distiller="l2"` / `"channel"` need `student` (its output widths
    size the adapters, `extra_loss_fn.trainable_variables`)."""
    if teacher is None:
        raise ValueError(f"Distillation needs a trained teacher: pass {TEACHER_FLAG}=<teacher .weights.h5>")
    if distiller not in DISTILLERS:
        raise ValueError(f"distiller must be one of {DISTILLERS}, got {distiller!r}")
    if ramp and step is None:
        raise ValueError("ramp=True needs step: a callable returning the training step")
    teacher.trainable = False
    adapters = None
    if distiller != "structure":
        if student is None:
            raise ValueError(f"distiller={distiller!r} needs the student model (to size its channel adapters)")
        adapters = FeatureAdapters(_widths(student, levels), _widths(teacher, levels), name="distill_adapters")

    def level_loss(s_feat, t_feat, level, batch):
        if distiller == "structure":
            return structure_affinity_loss(s_feat, t_feat, batch["valid"], mask_mode=mask_mode,
                                           max_pixels=max_pixels, method=method)
        s_feat = adapters.adapt(s_feat, level)
        return l2_feature_loss(s_feat, t_feat) if distiller == "l2" else channel_wise_loss(s_feat, t_feat, tau)

    def extra_loss_fn(student_outputs, batch):
        t_out = teacher(batch["image"], training=False)
        w = weight * ramp_factor(step()) if ramp else weight
        losses = {}
        for level in levels:
            t_feat = tf.stop_gradient(t_out[level])
            losses["distill_" + level.split("_", 1)[1]] = w * level_loss(student_outputs[level], t_feat, level, batch)
        return losses

    extra_loss_fn.teacher = teacher
    extra_loss_fn.adapters = adapters
    extra_loss_fn.trainable_variables = [] if adapters is None else list(adapters.trainable_variables)
    return extra_loss_fn


def load_teacher_for_distillation(teacher_weights, preset="tiny", input_shape=(None, None, 3)):
    """Builds the frozen teacher from a checkpoint; a missing flag or file is an error naming the flag."""
    if not teacher_weights:
        raise ValueError(f"Distillation needs a trained teacher checkpoint: pass {TEACHER_FLAG}=<path to the "
                         f"teacher .weights.h5 written by the teacher run (flags/teacher.cfg)>")
    path = os.fspath(teacher_weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{TEACHER_FLAG}={path!r}: no such file (train the teacher first with "
                                f"flags/teacher.cfg)")

    teacher = build_teacher(preset, weights=path, input_shape=input_shape)
    teacher.trainable = False
    return teacher
