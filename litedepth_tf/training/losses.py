"""Training losses of LiteDepth (paper Sec. 3.3): scale-invariant log, gradient, virtual normal and robust loss.

Every loss takes the model's ``depth`` output ``pred`` ``[B, h, w, 1]`` (metres, any resolution) and resizes it
bilinearly to the ground-truth resolution ``[B, H, W, 1]`` itself. Pixels with ``valid == 0`` never enter any
arithmetic (they are replaced with ``tf.where`` *before* log / division), so a batch with no valid pixel gives
exactly ``0.0`` and zero, finite gradients. ``valid`` is authoritative: a non-finite depth on a pixel marked
valid is propagated (the trainer then skips the step) rather than silently dropped.

1. Scale-invariant log loss (Eigen et al. 2014; the authors' ``SigLoss``), over all valid pixels of the batch::

       g = log(pred) - log(gt),   L_si = sqrt(Var(g) + lambda * mean(g)^2),   lambda = 0.15

   ``Var`` is the *population* variance ``mean((g - mean(g))^2)`` (``torch.var`` in the authors' code is the
   unbiased one; the two differ by a factor n / (n - 1), n ~ 1e5 pixels). With ``pred = k * gt`` the loss is
   exactly ``sqrt(lambda) * |log k|``. The square root is taken as ``where(D > 0, sqrt(D), 0)`` so that its
   gradient is 0, not inf, at D = 0 (pred == gt).
   ``si_per_image=True`` (not the paper's): the same per image, then the mean over the images that have a valid
   pixel, the way the MAI si-RMSE is scored; pooled, ``Var(g)`` also holds the spread of the per-image log-scale
   errors between the images of a batch.

2. Gradient loss: forward differences of the prediction, ``p[x+1] - p[x]`` and ``p[y+1] - p[y]``, against the
   batch's ``grad_x`` / ``grad_y`` targets (NaN where either pixel is invalid); mean absolute error over the
   finite target pairs of both directions together.

3. Virtual normal loss (Yin et al., "Enforcing geometric constraints of virtual normal for depth prediction",
   ICCV 2019; the ``VNL_Loss`` of the authors' Monocular-Depth-Estimation-Toolbox). Pixels (u, v) with depth z
   are back-projected with the batch's own intrinsics (``fx, fy, cx, cy`` at the depth map resolution, never
   hard-coded): ``X = (u - cx) z / fx, Y = (v - cy) z / fy, Z = z``. ``vnl_samples`` triplets of valid pixels
   are drawn per image (uniformly among that image's valid pixels, with replacement, stateless from ``seed``).
   A triplet is dropped, on the ground-truth points, as in the reference ``filter_mask``:

   * collinear: the |cosine| between any two of its edges p1p2, p1p3, p2p3 exceeds ``vnl_cos`` = 0.867
     (an angle below 30 or above 150 degrees); cosines are ``a.b / (|a| |b| + 1e-8)``;
   * too close: two of its points are within ``vnl_min_diff`` = 0.005 m of each other along each of X, Y and Z
     (the reference's threshold; the reference ORs the three axes over *different* edges, which also drops
     well-spread right-angle triplets on fronto-parallel planes, so here one edge must be short on all three).

   The normals ``n = (p2 - p1) x (p3 - p1) / |.|`` of ground truth and prediction (a zero cross product gives a
   zero normal, as the reference's ``+ 0.01`` on a zero norm) give per-triplet losses ``sum_xyz |n_gt - n_pred|``;
   the kept triplets of the whole batch are pooled, the lowest ``vnl_trim`` = 25 % dropped (``floor(0.25 K)``),
   the rest averaged. No kept triplet gives 0. The reference draws ``0.15 * H * W`` triplets per image among all
   pixels (~13.8k at 240x384, most landing on valid pixels); here ``vnl_samples`` = 2000 per image among the
   valid pixels only, which keeps the loss estimate's noise small (the mean over >= 1500 kept triplets per
   image) at a fraction of the gather cost.

4. Barron's general robust loss ("A general and adaptive robust loss function", CVPR 2019) on the residual in
   metres ``x = pred - gt`` over valid pixels, mean over valid pixels::

       f(x) = |a - 2| / a * (((x / c)^2 / |a - 2| + 1)^(a / 2) - 1),   a = 1, c = 2 by default

   with the limits ``a = 2``: ``0.5 (x / c)^2`` and ``a = 0``: ``log(0.5 (x / c)^2 + 1)``.

``compute_losses(pred, batch, seed, cfg)`` resizes ``pred`` once and returns exactly ``si, grad, vnl, robust``
and ``n_valid`` (the number of valid ground-truth pixels, float32, for logging).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

TERMS = ("si", "grad", "vnl", "robust")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    si_lambda: float = 0.15
    si_per_image: bool = False  # False: one Var/mean over the batch's valid pixels (the authors' SigLoss)
    robust_alpha: float = 1.0
    robust_c: float = 2.0  # metres
    vnl_samples: int = 2000  # triplets per image
    vnl_cos: float = 0.867  # |cos| above which two edges count as collinear (30 / 150 degrees)
    vnl_min_diff: float = 0.005  # metres; two points closer than this along X, Y and Z: "too close"
    vnl_trim: float = 0.25  # fraction of the smallest per-triplet losses dropped
    grad_nan_mask: bool = True  # False: gradient targets over every pixel pair (`with_grad_targets`)


def interpolation_matrix(n_in, n_out) -> tf.Tensor:
    """``[n_out, n_in]`` float32: row i holds the weights of ``tf.image.resize(..., "bilinear")`` (half-pixel
    centres, no antialiasing) for output pixel i along one axis, computed as its kernel does in float32:
    ``x = (i + 0.5) * (n_in / n_out) - 0.5``, ``lo = max(floor(x), 0)``, ``hi = min(ceil(x), n_in - 1)``,
    weights ``1 - (x - floor(x))`` on ``lo`` and ``x - floor(x)`` on ``hi``."""
    n_in, n_out = tf.convert_to_tensor(n_in, tf.int32), tf.convert_to_tensor(n_out, tf.int32)
    scale = tf.cast(n_in, tf.float32) / tf.cast(n_out, tf.float32)
    x = (tf.cast(tf.range(n_out), tf.float32) + 0.5) * scale - 0.5
    floor = tf.floor(x)
    t = (x - floor)[:, None]
    lo = tf.maximum(tf.cast(floor, tf.int32), 0)
    hi = tf.minimum(tf.cast(tf.math.ceil(x), tf.int32), n_in - 1)
    return tf.one_hot(lo, n_in) * (1.0 - t) + tf.one_hot(hi, n_in) * t


class _Upsampled:
    """The bilinear resize of ``pred`` ``[B, h, w, 1]`` to ``(H, W)`` as two small matmuls, ``Wy @ p @ Wx^T``
    (separable, exact up to float rounding), and the forward differences of the resized map along x and y from
    the differences of the interpolation rows, ``Wy @ p @ (Wx[1:] - Wx[:-1])^T`` and ``(Wy[1:] - Wy[:-1]) @ p @
    Wx^T``, so that no full-resolution slice (and its gradient) is needed. All maps are ``[B, H, W]``."""

    def __init__(self, pred: tf.Tensor, size):
        pred = tf.cast(pred, tf.float32)
        shape = tf.shape(pred)
        self.p = tf.reshape(pred, shape[:3])  # [B, h, w] (one channel)
        self.wy = interpolation_matrix(shape[1], size[0])  # [H, h]
        self.wx = interpolation_matrix(shape[2], size[1])  # [W, w]
        self._rows = tf.matmul(self.p, self.wx, transpose_b=True)  # [B, h, W]

    def full(self) -> tf.Tensor:
        return tf.matmul(self.wy, self._rows)  # [H, h] @ [B, h, W]: the batch dimension broadcasts

    def diff_x(self) -> tf.Tensor:  # [B, H, W - 1]
        dx = self.wx[1:] - self.wx[:-1]
        return tf.matmul(self.wy, tf.matmul(self.p, dx, transpose_b=True))

    def diff_y(self) -> tf.Tensor:  # [B, H - 1, W]
        dy = self.wy[1:] - self.wy[:-1]
        return tf.matmul(dy, self._rows)


def _same_size(pred: tf.Tensor, depth: tf.Tensor) -> bool:
    return pred.shape[1:3].is_fully_defined() and pred.shape[1:3] == depth.shape[1:3]


def resize_to(pred: tf.Tensor, depth: tf.Tensor) -> tf.Tensor:
    """``pred`` ``[B, h, w, 1]`` bilinearly resized to the spatial size of ``depth`` ``[B, H, W, 1]``, float32:
    the values of ``tf.image.resize(pred, (H, W), "bilinear")`` (to float rounding), computed as ``_Upsampled``
    (two matmuls: cheaper than the resize op and, above all, than its gradient on CPU). ``pred`` already at that
    size is returned as is (also when the sizes are only known at run time)."""
    pred = tf.cast(pred, tf.float32)
    if _same_size(pred, depth):
        return pred
    size = tf.shape(depth)[1:3]
    if pred.shape[1:3].is_fully_defined() and depth.shape[1:3].is_fully_defined():
        return _Upsampled(pred, size).full()[..., None]
    return tf.cond(tf.reduce_all(tf.equal(tf.shape(pred)[1:3], size)), lambda: pred,
                   lambda: _Upsampled(pred, size).full()[..., None])


def _mask(valid: tf.Tensor) -> tf.Tensor:
    return tf.convert_to_tensor(valid) > 0.5


def _count(mask: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32))


def _masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.where(mask, values, 0.0)) / tf.maximum(_count(mask), 1.0)


def _safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    positive = x > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, x, 1.0)), 0.0)


def si_log_loss(pred: tf.Tensor, depth: tf.Tensor, valid: tf.Tensor, lam: float = 0.15,
                per_image: bool = False) -> tf.Tensor:
    """sqrt(Var(g) + lam * mean(g)^2), g = log(pred) - log(gt) over the batch's valid pixels; with
    `per_image`, over each image's valid pixels, then the mean over the images that have any."""
    depth = tf.cast(depth, tf.float32)
    return _si(_as_maps(resize_to(pred, depth)), _as_maps(depth), _as_maps(_mask(valid)), lam, per_image)


def _si(pred, depth, mask, lam, per_image):
    """si_log_loss on ``[B, H, W]`` maps, ``pred`` already at the ground truth's resolution."""
    g = tf.where(mask, tf.math.log(tf.where(mask, pred, 1.0)) - tf.math.log(tf.where(mask, depth, 1.0)), 0.0)
    axis = [1, 2] if per_image else None  # one set of statistics per image, or one over the whole batch
    count = tf.reduce_sum(tf.cast(mask, tf.float32), axis=axis, keepdims=True)
    mean = tf.reduce_sum(g, axis=axis, keepdims=True) / tf.maximum(count, 1.0)
    var = tf.reduce_sum(tf.where(mask, tf.square(g - mean), 0.0), axis=axis, keepdims=True) / tf.maximum(count, 1.0)
    has = tf.cast(count > 0, tf.float32)  # only images (or a batch) with a valid pixel count
    return tf.reduce_sum(_safe_sqrt(var + lam * tf.square(mean)) * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def gradient_loss(pred: tf.Tensor, grad_x: tf.Tensor, grad_y: tf.Tensor) -> tf.Tensor:
    """Mean |forward difference of pred - target| over the finite target pairs of x and y together."""
    grad_x, grad_y = tf.cast(grad_x, tf.float32), tf.cast(grad_y, tf.float32)
    return _gradient(*_differences(tf.cast(pred, tf.float32), grad_x), grad_x, grad_y)


def _differences(pred, target):
    """Forward differences ``[B, H, W - 1]`` (x) and ``[B, H - 1, W]`` (y) of ``pred`` resized to the spatial
    size of ``target``: slices when ``pred`` is at that size already, else from the interpolation rows."""
    return _resized_maps(pred, target)[1:]


def _as_maps(x: tf.Tensor) -> tf.Tensor:
    """``[B, H, W, 1]`` -> ``[B, H, W]`` by a reshape: its gradient is a reshape too, where ``x[..., 0]`` (a strided
    slice) costs a zero-filled full-resolution copy in the backward pass."""
    return tf.reshape(x, tf.shape(x)[:3])


def _resized_maps(pred, target):
    """``(full [B, H, W], dx [B, H, W - 1], dy [B, H - 1, W])``: ``pred`` ``[B, h, w, 1]`` resized to the spatial
    size of ``target`` and its forward differences, all from ONE ``_Upsampled`` (the interpolation matrices and
    ``p @ Wx^T`` are shared), or ``pred`` itself and slices when it is at that size already. When the sizes are
    only known at run time (the trainer's relaxed shapes) one ``tf.cond`` picks the branch."""
    pred = tf.cast(pred, tf.float32)
    size = tf.shape(target)[1:3]

    def same():
        p = _as_maps(pred)
        return p, p[:, :, 1:] - p[:, :, :-1], p[:, 1:, :] - p[:, :-1, :]

    def upsampled():
        up = _Upsampled(pred, size)
        return up.full(), up.diff_x(), up.diff_y()

    if _same_size(pred, target):
        return same()
    if pred.shape[1:3].is_fully_defined() and target.shape[1:3].is_fully_defined():
        return upsampled()
    return tf.cond(tf.reduce_all(tf.equal(tf.shape(pred)[1:3], size)), same, upsampled)


def _gradient(px, py, grad_x, grad_y):
    """gradient_loss from the prediction's differences ``px`` / ``py`` ``[B, H, W-1]`` / ``[B, H-1, W]``."""
    tx, ty = grad_x[:, :, :-1, 0], grad_y[:, :-1, :, 0]
    mx, my = tf.math.is_finite(tx), tf.math.is_finite(ty)
    ex = tf.where(mx, tf.abs(px - tf.where(mx, tx, 0.0)), 0.0)
    ey = tf.where(my, tf.abs(py - tf.where(my, ty, 0.0)), 0.0)
    total = tf.reduce_sum(ex) + tf.reduce_sum(ey)
    return total / tf.maximum(_count(mx) + _count(my), 1.0)


def robust_loss(pred: tf.Tensor, depth: tf.Tensor, valid: tf.Tensor, alpha: float = 1.0,
                c: float = 2.0) -> tf.Tensor:
    """Barron's general robust loss of x = pred - gt (metres), mean over valid pixels."""
    depth = tf.cast(depth, tf.float32)
    return _robust(_as_maps(resize_to(pred, depth)), _as_maps(depth), _as_maps(_mask(valid)), alpha, c)


def _robust(pred, depth, mask, alpha, c):
    """robust_loss on ``[B, H, W]`` maps, ``pred`` already at the ground truth's resolution."""
    z = tf.square(tf.where(mask, pred - tf.where(mask, depth, 0.0), 0.0) / c)
    alpha = float(alpha)
    if alpha == 2.0:
        f = 0.5 * z
    elif alpha == 0.0:
        f = tf.math.log1p(0.5 * z)
    else:
        b = abs(alpha - 2.0)
        # a square root for the default alpha = 1 (its gradient is cheaper than pow's)
        power = tf.sqrt(z / b + 1.0) if alpha == 1.0 else tf.pow(z / b + 1.0, alpha / 2.0)
        f = b / alpha * (power - 1.0)
    return _masked_mean(f, mask)


def sample_triplets(valid: tf.Tensor, num: int, seed: tf.Tensor) -> tf.Tensor:
    """``[B, num, 3]`` int32 flat indices (``v * W + u``) drawn uniformly, with replacement, among the valid
    pixels of each image of ``valid`` ``[B, H, W, 1]``; stateless in ``seed`` (int ``[2]``). An image without a
    valid pixel gets arbitrary (invalid) indices, which the loss drops."""
    flat = tf.cast(tf.reshape(_mask(valid), [tf.shape(valid)[0], -1]), tf.int32)
    csum = tf.cumsum(flat, axis=1)  # csum[i] = number of valid pixels in [0, i]
    count = csum[:, -1:]
    u = tf.random.stateless_uniform([tf.shape(flat)[0], 3 * num], seed=seed, dtype=tf.float32)
    rank = tf.cast(tf.floor(u * tf.cast(count, tf.float32)), tf.int32)
    rank = tf.minimum(rank, tf.maximum(count - 1, 0))
    idx = tf.searchsorted(csum, rank, side="right")  # first pixel with more than `rank` valid pixels up to it
    idx = tf.minimum(idx, tf.shape(flat)[1] - 1)
    return tf.reshape(idx, [tf.shape(flat)[0], num, 3])


def _points(depth: tf.Tensor, idx: tf.Tensor, intrinsics: tf.Tensor) -> tf.Tensor:
    """Back-projected 3-D points ``[B, N, 3 (points), 3 (xyz)]`` of the pixels ``idx`` ``[B, N, 3]``."""
    width = tf.shape(depth)[2]
    z = tf.gather(tf.reshape(depth, [tf.shape(depth)[0], -1]), idx, batch_dims=1)
    u, v = tf.cast(idx % width, tf.float32), tf.cast(idx // width, tf.float32)
    k = tf.cast(intrinsics, tf.float32)[:, None, None, :]
    return tf.stack([(u - k[..., 2]) * z / k[..., 0], (v - k[..., 3]) * z / k[..., 1], z], axis=-1)


def _unit_normals(p: tf.Tensor) -> tf.Tensor:
    n = tf.linalg.cross(p[:, :, 1] - p[:, :, 0], p[:, :, 2] - p[:, :, 0])
    sq = tf.reduce_sum(tf.square(n), axis=-1, keepdims=True)
    nonzero = sq > 0
    return tf.where(nonzero, n / tf.sqrt(tf.where(nonzero, sq, 1.0)), 0.0)


def _keep_triplets(p: tf.Tensor, cos_threshold: float, min_diff: float) -> tf.Tensor:
    """``[B, N]`` bool: ground-truth triplets ``p`` ``[B, N, 3, 3]`` neither collinear nor too close."""
    edges = tf.stack([p[:, :, 1] - p[:, :, 0], p[:, :, 2] - p[:, :, 0], p[:, :, 2] - p[:, :, 1]], axis=2)
    norms = tf.norm(edges, axis=-1)
    collinear = tf.zeros(tf.shape(p)[:2], tf.bool)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        dot = tf.reduce_sum(edges[:, :, i] * edges[:, :, j], axis=-1)
        cos = dot / (norms[:, :, i] * norms[:, :, j] + 1e-8)
        collinear |= tf.abs(cos) > cos_threshold
    near = tf.reduce_any(tf.reduce_all(tf.abs(edges) < min_diff, axis=-1), axis=-1)
    return ~(collinear | near)


def vnl_loss_from_triplets(pred: tf.Tensor, depth: tf.Tensor, valid: tf.Tensor, intrinsics: tf.Tensor,
                           idx: tf.Tensor, cos_threshold: float = 0.867, min_diff: float = 0.005,
                           trim: float = 0.25) -> tf.Tensor:
    """Virtual normal loss on the given triplets ``idx`` ``[B, N, 3]`` of flat pixel indices (``v * W + u``)."""
    depth = tf.cast(depth, tf.float32)
    return _vnl(_as_maps(resize_to(pred, depth)), _as_maps(depth), _as_maps(_mask(valid)), intrinsics, idx,
                cos_threshold, min_diff, trim)


def _vnl(pred, depth, mask, intrinsics, idx, cos_threshold, min_diff, trim):
    """vnl_loss_from_triplets on ``[B, H, W]`` maps, ``pred`` already at the ground truth's resolution."""
    all_valid = tf.reduce_all(
        tf.gather(tf.reshape(mask, [tf.shape(mask)[0], -1]), idx, batch_dims=1), axis=-1)
    gt = tf.stop_gradient(_points(tf.where(mask, depth, 0.0), idx, intrinsics))
    keep = all_valid & _keep_triplets(gt, cos_threshold, min_diff)
    per_triplet = tf.reduce_sum(tf.abs(_unit_normals(gt) - _unit_normals(_points(pred, idx, intrinsics))), -1)
    kept = tf.boolean_mask(per_triplet, keep)
    n_drop = tf.cast(tf.floor(tf.cast(tf.size(kept), tf.float32) * trim), tf.int32)
    top = tf.gather(kept, tf.argsort(kept, stable=True)[n_drop:])  # gather, not top_k: its gradient fails at k=0
    return tf.reduce_sum(top) / tf.maximum(tf.cast(tf.size(top), tf.float32), 1.0)


def vnl_loss(pred: tf.Tensor, depth: tf.Tensor, valid: tf.Tensor, intrinsics: tf.Tensor, seed: tf.Tensor,
             num_samples: int = 2000, cos_threshold: float = 0.867, min_diff: float = 0.005,
             trim: float = 0.25) -> tf.Tensor:
    """Virtual normal loss on ``num_samples`` random valid triplets per image (stateless in ``seed``)."""
    idx = sample_triplets(valid, num_samples, seed)
    return vnl_loss_from_triplets(pred, depth, valid, intrinsics, idx, cos_threshold, min_diff, trim)


def compute_losses(pred: tf.Tensor, batch: dict, seed: tf.Tensor, cfg: LossConfig | None = None) -> dict:
    """``{"si", "grad", "vnl", "robust", "n_valid"}`` float32 scalars for the model's depth ``pred``.

    The prediction is resized once, and its forward differences come from the same interpolation rows
    (``_resized_maps``: one ``_Upsampled``, two matmuls each, no slice of the full-resolution map); every loss then
    works on ``[B, H, W]`` maps taken by reshapes, so the backward pass has no full-resolution slice gradient."""
    cfg = cfg or LossConfig()
    depth, valid = tf.cast(batch["depth"], tf.float32), tf.cast(batch["valid"], tf.float32)
    full, px, py = _resized_maps(pred, depth)
    depth3, mask3 = _as_maps(depth), _as_maps(_mask(valid))
    idx = sample_triplets(valid, cfg.vnl_samples, seed)
    return {
        "si": _si(full, depth3, mask3, cfg.si_lambda, cfg.si_per_image),
        "grad": _gradient(px, py, tf.cast(batch["grad_x"], tf.float32), tf.cast(batch["grad_y"], tf.float32)),
        "vnl": _vnl(full, depth3, mask3, batch["intrinsics"], idx, cfg.vnl_cos, cfg.vnl_min_diff, cfg.vnl_trim),
        "robust": _robust(full, depth3, mask3, cfg.robust_alpha, cfg.robust_c),
        "n_valid": _count(mask3),
    }


def unmasked_gradient_targets(depth: tf.Tensor, valid: tf.Tensor) -> tuple:
    """The gradient loss's targets *without* the NaN mask (the paper's "vanilla" gradient, Fig. 4, first line):
    forward differences of the ground truth with invalid pixels at 0 m, so every pair counts, including the
    jumps into and out of holes. Only the padded last column (x) / row (y) is NaN, as in the masked targets."""
    depth = tf.where(_mask(valid), tf.cast(depth, tf.float32), 0.0)
    nan = tf.constant(float("nan"), tf.float32)
    gx = tf.concat([depth[:, :, 1:, :] - depth[:, :, :-1, :], tf.fill(tf.shape(depth[:, :, :1, :]), nan)], axis=2)
    gy = tf.concat([depth[:, 1:, :, :] - depth[:, :-1, :, :], tf.fill(tf.shape(depth[:, :1, :, :]), nan)], axis=1)
    return gx, gy


def with_grad_targets(batch: dict, cfg: LossConfig) -> dict:
    """`batch` as `compute_losses` should see it under `cfg`: unchanged with `cfg.grad_nan_mask` (the paper's
    masked gradient loss), else with `grad_x` / `grad_y` replaced by `unmasked_gradient_targets`."""
    if cfg.grad_nan_mask:
        return batch
    gx, gy = unmasked_gradient_targets(batch["depth"], batch["valid"])
    return dict(batch, grad_x=gx, grad_y=gy)
