"""Structure-aware distillation (LiteDepth, Table 6): match the student's pixel-affinity structure to the teacher's.

For each decoder level (`feat_4`, `feat_8`, `feat_16`, pre-activation, as in the authors' `DistillWrapper`):

1. bring the teacher feature to the student's resolution (bilinear; with the teacher fed the student's input size,
   see `litedepth_tf.models.teacher`, the sizes already agree and nothing is resized). Channel counts may differ: only
   the HW x HW affinities are compared;
2. the valid-GT mask is brought from the depth map's resolution to the feature's with **nearest** sampling
   (`mask_mode="nearest"`, default, the authors' `resize(depth_gt, mode='nearest')`: the GT pixel at
   `floor(i * in / out)`, PyTorch's legacy nearest). Alternatives: `"any"` (a feature pixel is valid if any GT
   pixel in its footprint is: max-pool-like, keeps thin structures) and `"all"` (every GT pixel in its footprint
   is valid: min-pool-like, conservative at holes);
3. L2-normalise every pixel's feature vector over channels (eps 1e-12, as `F.normalize`);
4. cosine affinities `A = F F^T` over the valid pixels, for student and teacher;
5. loss per image = mean over valid pairs of `(A_s - A_t)^2`; mean over images with at least one valid pixel
   (a batch without any valid pixel gives 0, never NaN); times `weight` (10, the authors' `distill_weight`).

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

`make_distill_fn(teacher)` returns the trainer hook `extra_loss_fn(student_outputs, batch) ->
{"distill_4", "distill_8", "distill_16"}` (already weighted); the teacher runs with `training=False` under
`tf.stop_gradient`, so it is frozen (inference-mode, no gradient) whatever the trainer does.
"""

from __future__ import annotations

import os

import tensorflow as tf

from litedepth_tf.models.teacher import build_teacher

LEVELS = ("feat_4", "feat_8", "feat_16")
DISTILL_WEIGHT = 10.0
MASK_MODES = ("nearest", "any", "all")
METHODS = ("dense", "gram")
TEACHER_FLAG = "--teacher_weights"


def resize_mask(valid, size, mode: str = "nearest"):
    """valid [B, h, w, 1] (1/0) -> [B, H, W, 1] float32 at `size` (see module docstring for the modes)."""
    valid = tf.cast(valid, tf.float32)
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


def structure_affinity_loss(student_feat, teacher_feat, valid, mask_mode="nearest", max_pixels=None,
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


def make_distill_fn(teacher, weight: float = DISTILL_WEIGHT, levels=LEVELS, mask_mode="nearest",
                    max_pixels=None, method="dense"):
    """The trainer hook: `extra_loss_fn(student_outputs, batch) -> {"distill_4": ..., "distill_8": ...,
    "distill_16": ...}`, each already multiplied by `weight`. The teacher sees `batch["image"]` (the student's
    raw input), runs in inference mode and gets no gradient."""
    if teacher is None:
        raise ValueError(f"Distillation needs a trained teacher: pass {TEACHER_FLAG}=<teacher .weights.h5>")
    teacher.trainable = False

    def extra_loss_fn(student_outputs, batch):
        t_out = teacher(batch["image"], training=False)
        losses = {}
        for level in levels:
            t_feat = tf.stop_gradient(t_out[level])
            loss = structure_affinity_loss(student_outputs[level], t_feat, batch["valid"], mask_mode=mask_mode,
                                           max_pixels=max_pixels, method=method)
            losses["distill_" + level.split("_", 1)[1]] = weight * loss
        return losses

    extra_loss_fn.teacher = teacher
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
