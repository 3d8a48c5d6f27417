"""The four training losses of LiteDepth (paper Sec. 3.3) at the resolutions and with the conventions of the
authors' code (zhyever/LiteDepth, ``densedepth_light_head.py`` ``losses()``; file and line of every convention:
docs/fidelity.md).

Inputs: ``pred`` ``[B, h, w, 1]``, the network's depth at its own resolution (stride 4 of the network input, e.g.
32x40 for a 480x640 crop seen at 128x160), and ``depth`` ``[B, H, W, 1]``, the ground truth at the crop's native
resolution in metres, **0 = invalid** (the authors' ``depth_gt > 0`` mask). No loss reads another mask.

* ``si_loss`` and ``robust_loss`` compare the prediction **upsampled to the ground truth** with ``mode='nearest'``
  (``upsample_type='nearest'`` is the head's default and the auto config sets no other: each prediction pixel
  covers a block of ground-truth pixels, ``src = floor(dst * h / H)`` as PyTorch computes it in float32);
* ``gradient_loss`` and ``vnl_loss`` compare the prediction at its own resolution with the ground truth
  **downsampled** to it, bilinear with ``align_corners=True`` (``downsample_gt``): holes blend into their
  neighbours, and a pixel is invalid only where every ground-truth pixel it reads is.

1. ``si_loss`` (the toolbox's ``SigLoss``): ``g = log(p + 1e-3) - log(gt + 1e-3)`` over the valid ground-truth
   pixels of the batch, ``sqrt(Var(g) + 0.15 mean(g)^2)`` with the **unbiased** variance (``torch.var``).
   Computed without materialising the upsampled prediction: a nearest upsampling repeats ``p`` over its block, so
   with per-block ground-truth statistics (count ``n_b``, mean ``t_b`` and centred sum of squares ``q_b`` of
   ``log(gt + 1e-3)``; no gradient) ``sum g = sum_b n_b (l_b - t_b)`` and ``sum (g - m)^2 = sum_b n_b (l_b - t_b -
   m)^2 + q_b``, ``l_b = log(p_b + 1e-3)``: the same value, and the gradient only at ``[B, h, w]``. Fewer than two
   valid pixels: the variance is taken as 0 (``torch.var`` would give NaN). ``per_image=True`` (not the authors'):
   the same per image, then the mean over the images that have a valid pixel, the way MAI scores si-RMSE.
2. ``robust_loss`` (``RobustLoss``, Barron 2019, ``alpha = 1, c = 2``, ``log=False``): on ``x = gt - p_up`` over the
   valid pixels, ``|a - 2| / a (((x / c)^2 / |a - 2| + 1)^(a / 2) - 1)``, mean over the valid pixels (limits
   ``a = 2``: ``0.5 (x / c)^2``, ``a = 0``: ``log(0.5 (x / c)^2 + 1)``).
3. ``gradient_loss`` (``GradDepthLoss``): forward differences along x and y of the prediction and of the
   downsampled ground truth, ``mean |dp_x - dg_x| + mean |dp_y - dg_y|`` (each direction averaged on its own and
   the two **added**). ``mask="paper"`` (default; paper Sec. 3.3, Table 5): each mean over the pairs whose two
   ground-truth pixels are valid. ``mask="authors_code"``: what the code computes: a pair touching an invalid
   pixel keeps its prediction difference against a target of 0 and every pair counts (the code's NaN mask on the
   prediction side runs after the targets were zeroed, so it masks nothing). ``mask="none"`` (the paper's
   "vanilla" gradient loss): the targets are the differences of the ground truth with holes at 0 m.
4. ``vnl_loss`` (``VNLLoss``, Yin et al. 2019, as the authors changed it): ``int(0.15 h w)`` triplets of pixels
   are drawn once **for the whole batch** (uniformly over all pixels, with replacement) and back-projected with
   the config's focal lengths scaled to the prediction's size (``f * w / 640``, ``f * h / 480``) about the
   principal point ``(w // 2, h // 2)``: ``X = (u - u0) |z| / fx, Y = (v - v0) |z| / fy, Z = z``. A triplet is
   kept where the **prediction's** points (the paper: "constraints on predictions to filter invalid samples")
   are all deeper than ``delta_z`` = 0.1 m and the triplet is neither too close (``|d| < 0.005`` along x for some
   edge, along y for some edge and along z for some edge; the config's 0.01 is ignored, the code passes 0.005)
   nor collinear (more than 3 of the 9 cosines between the edges p1p2, p1p3, p2p3, each with itself included,
   beyond +-0.867). Invalid ground truth is infinitely far: its points are inf / NaN, so its unit normal is NaN
   (or partly 0) and every NaN / inf component is zeroed on both sides; such triplets stay in the pool. Per
   triplet ``sum_xyz |n_pred - n_gt|``; the kept triplets of the batch are sorted, the lowest ``int(0.25 K)``
   dropped, the rest averaged (none kept: 0). A zero cross product gets the norm 0.01 (a zero normal).
   ``intrinsics="crop"`` (not the authors'): the batch's own per-crop intrinsics instead of the full-frame focal.

``compute_losses(pred, batch, seed, cfg)`` returns the raw terms ``si, grad, vnl, robust`` and ``n_valid``; the
loss weights (1 / 0.25 / 2.5 / 0.2, the auto config) are applied by the weighting (`training.reweight`) before
the re-weighting, as the authors' ``loss_weight`` of each loss is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

TERMS = ("si", "grad", "vnl", "robust")
GRAD_MASKS = ("paper", "authors_code", "none")
VNL_INTRINSICS = ("authors", "crop")
# the auto config's VNL camera: focal lengths of the 480x640 MAI frames (basemodel_crop_gradloss_vnl_robust_auto.py)
AUTHORS_FOCAL = (518.85790117450188, 519.46961112127485)
AUTHORS_FRAME = (480, 640)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    si_lambda: float = 0.15
    si_eps: float = 1e-3  # log(x + eps) on both sides (SigLoss)
    si_per_image: bool = False  # False: one Var / mean over the batch's valid pixels (the authors' SigLoss)
    robust_alpha: float = 1.0
    robust_c: float = 2.0  # metres
    grad_mask: str = "paper"  # GRAD_MASKS
    vnl_ratio: float = 0.15  # triplets per batch: int(ratio * h * w) at the prediction's resolution
    vnl_cos: float = 0.867  # |cos| beyond which two edges count as collinear
    vnl_diff: float = 0.005  # metres: "too close" along an axis (the code's value; the config's 0.01 is unused)
    vnl_delta_z: float = 0.1  # metres: a prediction point must be deeper than this
    vnl_trim: float = 0.25  # fraction of the smallest per-triplet losses dropped
    vnl_intrinsics: str = "authors"  # VNL_INTRINSICS
    vnl_focal: tuple = AUTHORS_FOCAL  # fx, fy of the full frame (with vnl_intrinsics="authors")
    vnl_frame: tuple = AUTHORS_FRAME  # H, W of the full frame the focal lengths belong to

    def __post_init__(self):
        if self.grad_mask not in GRAD_MASKS:
            raise ValueError(f"grad_mask must be one of {GRAD_MASKS}, got {self.grad_mask!r}")
        if self.vnl_intrinsics not in VNL_INTRINSICS:
            raise ValueError(f"vnl_intrinsics must be one of {VNL_INTRINSICS}, got {self.vnl_intrinsics!r}")


# ---- resampling between the prediction's grid and the ground truth's ----------------------------------------
def nearest_source(n_in, n_out) -> tf.Tensor:
    """``[n_out]`` int32: the source index of each output index of PyTorch's ``F.interpolate(mode='nearest')``
    along one axis, ``min(floor(i * float32(n_in / n_out)), n_in - 1)`` (its float32 arithmetic, which is also
    TensorFlow's ``resize_nearest_neighbor`` without half-pixel centres)."""
    n_in, n_out = tf.convert_to_tensor(n_in, tf.int32), tf.convert_to_tensor(n_out, tf.int32)
    scale = tf.cast(n_in, tf.float32) / tf.cast(n_out, tf.float32)
    src = tf.cast(tf.floor(tf.cast(tf.range(n_out), tf.float32) * scale), tf.int32)
    return tf.minimum(src, n_in - 1)


def _nearest_np(n_in: int, n_out: int) -> np.ndarray:
    """`nearest_source` in NumPy float32 arithmetic (the same indices)."""
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)


def downsample_gt(depth: tf.Tensor, size) -> tf.Tensor:
    """The ground truth ``[B, H, W, 1]`` resized to ``size`` (h, w) bilinearly with ``align_corners=True`` (the
    authors' ``depth_gt_downsample``; TensorFlow's ``ResizeBilinear`` with ``align_corners`` computes the same
    weights, ``src = i (H - 1) / (h - 1)``). Zeros (invalid) blend with their valid neighbours."""
    return tf.raw_ops.ResizeBilinear(images=tf.cast(depth, tf.float32), size=size, align_corners=True,
                                    half_pixel_centers=False)


class _Blocks:
    """The nearest-upsampling map from a ``[B, h, w]`` grid to ``[B, H, W]``: ``up(p)`` repeats each value over its
    block, ``sum(x)`` adds a ``[B, H, W]`` map over each block (the transpose of ``up``). When each axis maps
    ``f`` consecutive output pixels to each source pixel (integer factors: 480x640 from 32x40, and every R-crop
    of the MAI frames) both are a reshape and a broadcast / reduction; otherwise (any other size) matmuls with the
    one-hot maps. With sizes known only at run time (the trainer's R-crop batches) one ``tf.cond`` picks."""

    def __init__(self, small, big):
        self.h, self.w = small
        self.H, self.W = big
        self.ry, self.rx = nearest_source(self.h, self.H), nearest_source(self.w, self.W)
        self.fy, self.fx = self.H // self.h, self.W // self.w
        if all(isinstance(v, int) for v in (self.h, self.w, self.H, self.W)):  # decided here: one branch built
            self.regular = all(f * n == m and np.array_equal(_nearest_np(n, m), np.arange(m) // f)
                               for n, m, f in ((self.h, self.H, self.fy), (self.w, self.W, self.fx)))
        else:
            self.regular = (tf.equal(self.fy * self.h, self.H) & tf.equal(self.fx * self.w, self.W)
                            & tf.reduce_all(tf.equal(self.ry, tf.range(self.H) // tf.maximum(self.fy, 1)))
                            & tf.reduce_all(tf.equal(self.rx, tf.range(self.W) // tf.maximum(self.fx, 1))))

    def _pick(self, regular, general):
        if isinstance(self.regular, bool):
            return regular() if self.regular else general()
        return tf.cond(self.regular, regular, general)

    def run(self, fn):
        """``fn(full, up, total)`` on this map's path: ``full(x)`` views a ``[B, H, W]`` map (as ``[B, h, fy, w, fx]``
        on the regular path), ``up(p)`` is ``[B, h, w]`` broadcastable against such a view (not materialised on
        the regular path), ``total(v)`` sums a view over each block to ``[B, h, w]``. ``fn`` returns small tensors."""

        def regular():
            def full(x):
                return tf.reshape(x, tf.stack([tf.shape(x)[0], self.h, self.fy, self.w, self.fx]))

            return fn(full, lambda p: p[:, :, None, :, None], lambda v: tf.reduce_sum(v, axis=[2, 4]))

        def general():
            oy = tf.one_hot(self.ry, self.h)  # [H, h]
            ox = tf.one_hot(self.rx, self.w)  # [W, w]

            def up(p):
                return tf.gather(tf.gather(p, self.ry, axis=1), self.rx, axis=2)

            def total(v):
                return tf.matmul(tf.matmul(oy, v, transpose_a=True), ox)  # [h, H] @ [B, H, W] @ [W, w]

            return fn(lambda x: x, up, total)

        return self._pick(regular, general)

    def up(self, p: tf.Tensor) -> tf.Tensor:
        """``p`` ``[B, h, w]`` repeated over each block: ``[B, H, W]``."""
        return self.run(lambda full, up, total: tf.reshape(up(p) + full(tf.zeros(tf.stack(
            [tf.shape(p)[0], self.H, self.W]))), tf.stack([tf.shape(p)[0], self.H, self.W])))

    def sum(self, x: tf.Tensor) -> tf.Tensor:
        """``x`` ``[B, H, W]`` summed over each block: ``[B, h, w]``."""
        return self.run(lambda full, up, total: total(full(x)))


def _maps(x: tf.Tensor) -> tf.Tensor:
    """``[B, H, W, 1]`` -> ``[B, H, W]`` float32 by a reshape (its gradient is a reshape too)."""
    x = tf.cast(x, tf.float32)
    return tf.reshape(x, tf.shape(x)[:3])


def _hw(x):
    """(H, W) of ``[B, H, W]``: Python ints where the shape is static, else scalar tensors."""
    return tuple(int(d) if d is not None else tf.shape(x)[i] for i, d in ((1, x.shape[1]), (2, x.shape[2])))


def _safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    positive = x > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, x, 1.0)), 0.0)


# ---- 1. and 2.: the terms on the ground truth's grid -----------------------------------------------------------
def _robust_parts(x, alpha):
    """``(f, f')`` of Barron's loss at the scaled residuals ``x = (gt - p) / c`` (0 where invalid: f = f' = 0)."""
    z = tf.square(x)
    if alpha == 2.0:
        return 0.5 * z, x
    if alpha == 0.0:
        return tf.math.log1p(0.5 * z), x / (0.5 * z + 1.0)
    b = abs(alpha - 2.0)
    if alpha == 1.0:  # a square root (cheaper than pow)
        root = tf.sqrt(z + 1.0)
        return root - 1.0, x / root
    base = z / b + 1.0
    return b / alpha * (tf.pow(base, alpha / 2.0) - 1.0), x * tf.pow(base, alpha / 2.0 - 1.0)


def _grid_stats(p, gt, blocks, eps, alpha, c):
    """Everything the two full-resolution terms need, in one pass structure over the ground truth: per prediction
    pixel the count ``n_b``, mean ``t_b`` and centred sum of squares ``q_b`` of ``log(gt + eps)`` over its block's
    valid pixels, the robust loss summed over every valid pixel, and that sum's derivative by each ``p_b``
    (``-(1 / c) sum_block f'``: the gradient computed in the forward pass, so that no full-resolution tensor is
    kept for, or made by, the backward pass). ``p`` is treated as a constant here."""
    p = tf.stop_gradient(p)

    def fn(full, up, total):
        g = full(gt)
        mask = g > 0
        t = tf.where(mask, tf.math.log(g + eps), 0.0)
        n_b = total(tf.cast(mask, tf.float32))
        t_b = total(t) / tf.maximum(n_b, 1.0)
        q_b = total(tf.where(mask, tf.square(t - up(t_b)), 0.0))
        f, df = _robust_parts(tf.where(mask, g - up(p), 0.0) / c, float(alpha))
        return n_b, t_b, q_b, tf.reduce_sum(f), -total(df) / c

    return blocks.run(fn)


def _with_gradient(p, value, grad):
    """``value`` whose gradient with respect to ``p`` is ``grad`` (both computed without tracking ``p``)."""
    return value + tf.reduce_sum((p - tf.stop_gradient(p)) * tf.stop_gradient(grad))


def _si_from_stats(p, n_b, t_b, q_b, lam, eps, per_image):
    """SigLoss from the block statistics: g on a valid pixel i of block b is ``d_b + (t_b - t_i)``, ``d_b = log(p_b
    + eps) - t_b``, so ``sum g = sum_b n_b d_b`` and ``sum (g - m)^2 = sum_b n_b (d_b - m)^2 + q_b``."""
    d = tf.math.log(p + eps) - t_b
    axis = [1, 2] if per_image else None
    n = tf.reduce_sum(n_b, axis=axis, keepdims=True)
    mean = tf.reduce_sum(n_b * d, axis=axis, keepdims=True) / tf.maximum(n, 1.0)
    ss = tf.reduce_sum(n_b * tf.square(d - mean) + q_b, axis=axis, keepdims=True)
    var = tf.where(n > 1, ss / tf.maximum(n - 1.0, 1.0), 0.0)
    has = tf.cast(n > 0, tf.float32)
    return tf.reduce_sum(_safe_sqrt(var + lam * tf.square(mean)) * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def _grid_terms(p, gt, blocks, cfg: LossConfig):
    """``(si, robust, n_valid)`` of ``p`` ``[B, h, w]`` against ``gt`` ``[B, H, W]`` (nearest blocks)."""
    n_b, t_b, q_b, robust_sum, robust_grad = _grid_stats(p, gt, blocks, cfg.si_eps, cfg.robust_alpha, cfg.robust_c)
    n_valid = tf.reduce_sum(n_b)
    si = _si_from_stats(p, n_b, t_b, q_b, cfg.si_lambda, cfg.si_eps, cfg.si_per_image)
    robust = _with_gradient(p, robust_sum, robust_grad) / tf.maximum(n_valid, 1.0)
    return si, robust, n_valid


def si_loss(pred: tf.Tensor, depth: tf.Tensor, lam: float = 0.15, eps: float = 1e-3,
            per_image: bool = False) -> tf.Tensor:
    """The authors' SigLoss of ``pred`` (nearest-upsampled to ``depth``'s size) against ``depth`` (0 = invalid)."""
    p, gt = _maps(pred), _maps(depth)
    cfg = LossConfig(si_lambda=lam, si_eps=eps, si_per_image=per_image)
    return _grid_terms(p, gt, _Blocks(_hw(p), _hw(gt)), cfg)[0]


def robust_loss(pred: tf.Tensor, depth: tf.Tensor, alpha: float = 1.0, c: float = 2.0) -> tf.Tensor:
    """Barron's general robust loss of ``gt - pred`` (metres; ``pred`` nearest-upsampled), mean over valid pixels."""
    p, gt = _maps(pred), _maps(depth)
    cfg = LossConfig(robust_alpha=alpha, robust_c=c)
    return _grid_terms(p, gt, _Blocks(_hw(p), _hw(gt)), cfg)[1]


# ---- 3. gradient loss ---------------------------------------------------------------------------------------
def gradient_loss(pred: tf.Tensor, depth_small: tf.Tensor, mask: str = "paper") -> tf.Tensor:
    """The gradient loss of ``pred`` against ``depth_small``, the ground truth at ``pred``'s resolution
    (`downsample_gt`); ``mask``: "paper", "authors_code" or "none" (module docstring)."""
    if mask not in GRAD_MASKS:
        raise ValueError(f"mask must be one of {GRAD_MASKS}, got {mask!r}")
    return _gradient(_maps(pred), _maps(depth_small), mask)


def _gradient(p, g, mask):
    total = tf.constant(0.0, tf.float32)
    for dp, g1, g0 in ((p[:, :, 1:] - p[:, :, :-1], g[:, :, 1:], g[:, :, :-1]),  # x
                       (p[:, 1:, :] - p[:, :-1, :], g[:, 1:, :], g[:, :-1, :])):  # y
        if mask == "none":
            total += tf.reduce_mean(tf.abs(dp - (g1 - g0)))
            continue
        pair = (g1 > 0) & (g0 > 0)
        err = tf.abs(dp - tf.where(pair, g1 - g0, 0.0))
        if mask == "authors_code":
            total += tf.reduce_mean(err)
        else:
            count = tf.reduce_sum(tf.cast(pair, tf.float32))
            total += tf.reduce_sum(tf.where(pair, err, 0.0)) / tf.maximum(count, 1.0)
    return total


# ---- 4. virtual normal loss ---------------------------------------------------------------------------------
def sample_triplets(size, seed: tf.Tensor, ratio: float = 0.15) -> tf.Tensor:
    """``[N, 3]`` int32 flat pixel indices (``v * w + u``) of ``N = int(ratio * h * w)`` triplets drawn uniformly
    with replacement over every pixel of an ``(h, w)`` grid, one set for the whole batch (the authors'
    ``select_index``); stateless in ``seed`` (int ``[2]``)."""
    h, w = (tf.convert_to_tensor(v, tf.int32) for v in size)
    num = h * w
    count = tf.cast(tf.floor(tf.cast(num, tf.float32) * ratio), tf.int32)
    return tf.random.stateless_uniform(tf.stack([count, 3]), seed=seed, minval=0, maxval=num, dtype=tf.int32)


def _focal_center(h, w, cfg: LossConfig, intrinsics):
    """``[B or 1, 4]`` fx, fy, u0, v0 at the prediction's ``(h, w)``."""
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    if cfg.vnl_intrinsics == "crop":  # the batch's per-crop intrinsics, given at the ground truth's resolution
        return intrinsics
    fx = cfg.vnl_focal[0] * wf / float(cfg.vnl_frame[1])
    fy = cfg.vnl_focal[1] * hf / float(cfg.vnl_frame[0])
    return tf.stack([fx, fy, tf.cast(w // 2, tf.float32), tf.cast(h // 2, tf.float32)])[None]


def _points(z: tf.Tensor, idx: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """``[B, N, 3 (points), 3 (xyz)]``: the pixels ``idx`` ``[N, 3]`` of the depth maps ``z`` ``[B, h, w]``
    back-projected with ``k`` ``[B or 1, 4]`` (fx, fy, u0, v0)."""
    w = tf.shape(z)[2]
    d = tf.gather(tf.reshape(z, [tf.shape(z)[0], -1]), idx, axis=1)  # [B, N, 3]
    u, v = tf.cast(idx % w, tf.float32), tf.cast(idx // w, tf.float32)
    k = k[:, None, None, :]
    return tf.stack([(u - k[..., 2]) * tf.abs(d) / k[..., 0], (v - k[..., 3]) * tf.abs(d) / k[..., 1], d], axis=-1)


def _unit_normals(pts: tf.Tensor, safe: bool = True) -> tf.Tensor:
    """``(p2 - p1) x (p3 - p1)`` divided by its norm, or by 0.01 where the norm is 0 (a zero normal). ``safe``: the
    norm's gradient is 0 at 0, as PyTorch's (the prediction's side); the ground truth's side keeps IEEE inf / NaN."""
    n = tf.linalg.cross(pts[:, :, 1] - pts[:, :, 0], pts[:, :, 2] - pts[:, :, 0])
    sq = tf.reduce_sum(tf.square(n), axis=-1, keepdims=True)
    norm = _safe_sqrt(sq) if safe else tf.sqrt(sq)
    return n / (norm + 0.01 * tf.cast(tf.equal(sq, 0.0), tf.float32))


def _keep(pts: tf.Tensor, cfg: LossConfig) -> tf.Tensor:
    """``[B, N]`` bool: triplets (of the prediction's points) the authors' ``filter_mask`` keeps."""
    edges = tf.stack([pts[:, :, 1] - pts[:, :, 0], pts[:, :, 2] - pts[:, :, 0], pts[:, :, 2] - pts[:, :, 1]],
                     axis=2)  # [B, N, 3 (edges), 3 (xyz)]
    norms = _safe_sqrt(tf.reduce_sum(tf.square(edges), axis=-1))  # [B, N, 3]
    dots = tf.einsum("bnix,bnjx->bnij", edges, edges)
    cos = dots / (norms[..., :, None] * norms[..., None, :] + 1e-8)
    beyond = tf.reduce_sum(tf.cast(tf.abs(cos) > cfg.vnl_cos, tf.int32), axis=[2, 3])
    collinear = beyond > 3
    close = tf.reduce_all(tf.reduce_any(tf.abs(edges) < cfg.vnl_diff, axis=2), axis=-1)  # some edge per axis
    deep = tf.reduce_all(pts[..., 2] > cfg.vnl_delta_z, axis=-1)
    return deep & ~(close | collinear)


def vnl_loss_from_triplets(pred: tf.Tensor, depth_small: tf.Tensor, idx: tf.Tensor, cfg: LossConfig | None = None,
                           intrinsics: tf.Tensor | None = None) -> tf.Tensor:
    """The virtual normal loss of ``pred`` against ``depth_small`` (the ground truth at ``pred``'s resolution,
    `downsample_gt`) on the triplets ``idx`` ``[N, 3]`` (flat indices ``v * w + u``, one set for the batch).
    ``intrinsics`` ``[B, 4]`` only with ``cfg.vnl_intrinsics == "crop"`` (fx, fy, cx, cy at ``pred``'s size)."""
    cfg = cfg or LossConfig()
    return _vnl(_maps(pred), _maps(depth_small), idx, cfg, intrinsics)


def _vnl(p, g, idx, cfg, intrinsics):
    h, w = _hw(p)
    k = _focal_center(h, w, cfg, intrinsics)
    pts_p = _points(p, idx, k)
    inf = tf.constant(float("inf"), tf.float32)
    pts_g = tf.stop_gradient(_points(tf.where(g > 0, g, inf), idx, k))  # invalid: infinitely far
    keep = _keep(pts_p, cfg)
    n_p, n_g = _unit_normals(pts_p), tf.stop_gradient(_unit_normals(pts_g, safe=False))
    bad = ~tf.math.is_finite(n_g)  # NaN / inf components: zeroed on both sides, the triplet stays
    per = tf.reduce_sum(tf.abs(tf.where(bad, 0.0, n_p) - tf.where(bad, 0.0, n_g)), axis=-1)  # [B, N]
    kept = tf.boolean_mask(per, keep)
    n_drop = tf.cast(tf.floor(tf.cast(tf.size(kept), tf.float32) * cfg.vnl_trim), tf.int32)
    top = tf.gather(kept, tf.argsort(kept, stable=True)[n_drop:])  # gather, not top_k: its gradient fails at k=0
    return tf.reduce_sum(top) / tf.maximum(tf.cast(tf.size(top), tf.float32), 1.0)


def vnl_loss(pred: tf.Tensor, depth_small: tf.Tensor, seed: tf.Tensor, cfg: LossConfig | None = None,
             intrinsics: tf.Tensor | None = None) -> tf.Tensor:
    """The virtual normal loss on ``int(cfg.vnl_ratio h w)`` random triplets (stateless in ``seed``)."""
    cfg = cfg or LossConfig()
    idx = sample_triplets(_hw(_maps(pred)), seed, cfg.vnl_ratio)
    return vnl_loss_from_triplets(pred, depth_small, idx, cfg, intrinsics)


# ---- all four -----------------------------------------------------------------------------------------------
def scale_intrinsics(intrinsics: tf.Tensor, big, small) -> tf.Tensor:
    """``[B, 4]`` fx, fy, cx, cy given on a ``big`` (H, W) grid, for the same view sampled on a ``small`` (h, w)
    grid of equal extent (pixel centres: ``c' = (c + 0.5) s - 0.5``)."""
    sy = tf.cast(small[0], tf.float32) / tf.cast(big[0], tf.float32)
    sx = tf.cast(small[1], tf.float32) / tf.cast(big[1], tf.float32)
    k = tf.cast(intrinsics, tf.float32)
    return tf.stack([k[:, 0] * sx, k[:, 1] * sy, (k[:, 2] + 0.5) * sx - 0.5, (k[:, 3] + 0.5) * sy - 0.5], axis=1)


def compute_losses(pred: tf.Tensor, batch: dict, seed: tf.Tensor, cfg: LossConfig | None = None) -> dict:
    """``{"si", "grad", "vnl", "robust", "n_valid"}`` float32 scalars for the network's depth ``pred`` and the
    ``batch``'s ground truth ``depth`` (0 = invalid; ``intrinsics`` read only with ``vnl_intrinsics="crop"``):
    each term at the authors' resolution (module docstring), unweighted."""
    cfg = cfg or LossConfig()
    p, gt = _maps(pred), _maps(batch["depth"])
    small, big = _hw(p), _hw(gt)
    blocks = _Blocks(small, big)
    g = _maps(downsample_gt(batch["depth"], tf.stack(small)))
    k = scale_intrinsics(batch["intrinsics"], big, small) if cfg.vnl_intrinsics == "crop" else None
    idx = sample_triplets(small, seed, cfg.vnl_ratio)
    si, robust, n_valid = _grid_terms(p, gt, blocks, cfg)
    return {"si": si, "grad": _gradient(p, g, cfg.grad_mask), "vnl": _vnl(p, g, idx, cfg, k), "robust": robust,
            "n_valid": n_valid}
