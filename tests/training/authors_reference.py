"""A NumPy transcription of what the authors' training losses compute (zhyever/LiteDepth @958cf4e,
``projects/toolbox_plugin/models/``; SigLoss from zhyever/Monocular-Depth-Estimation-Toolbox), written from the
formulas, step by step in the order the PyTorch code takes them (NCHW there, ``[B, H, W]`` maps here), with its
IEEE arithmetic (inf for invalid ground truth, NaN where the code produces one) and none of this project's
shortcuts. docs/fidelity.md names the file and line of each step. The tests compare litedepth_tf.training.losses,
reweight and distill with these functions.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


# ---- F.interpolate ------------------------------------------------------------------------------------------
def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """mode='nearest': src = min(floor(dst * (float)(in / out)), in - 1), in float32."""
    scale = F32(n_in) / F32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=F32) * scale).astype(np.int64), n_in - 1)


def interpolate_nearest(x: np.ndarray, size) -> np.ndarray:
    """``[B, H, W]`` -> ``[B, size]``."""
    return x[:, nearest_index(x.shape[1], size[0])][:, :, nearest_index(x.shape[2], size[1])]


def _bilinear_axis(n_in: int, n_out: int):
    """mode='bilinear', align_corners=True along one axis: src = dst * (in - 1) / (out - 1) (0 for out = 1),
    i0 = (int) src, i1 = i0 + (i0 < in - 1), weights 1 - (src - i0) and src - i0."""
    scale = F32(n_in - 1) / F32(n_out - 1) if n_out > 1 else F32(0)
    src = np.arange(n_out, dtype=F32) * scale
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    l1 = (src - i0).astype(F32)
    return i0, i1, (F32(1) - l1).astype(F32), l1


def interpolate_bilinear_ac(x: np.ndarray, size) -> np.ndarray:
    """``[B, H, W]`` -> ``[B, size]``: out = l0y (l0x x00 + l1x x01) + l1y (l0x x10 + l1x x11)."""
    y0, y1, a0, a1 = _bilinear_axis(x.shape[1], size[0])
    x0, x1, b0, b1 = _bilinear_axis(x.shape[2], size[1])
    x = x.astype(F32)

    def row(r):
        return x[:, r][:, :, x0] * b0 + x[:, r][:, :, x1] * b1

    return (a0[:, None] * row(y0) + a1[:, None] * row(y1)).astype(F32)


# ---- the head's losses() ------------------------------------------------------------------------------------
def head_inputs(pred: np.ndarray, depth_gt: np.ndarray):
    """``(depth_pred_upsample, depth_gt_downsample)`` of ``losses()``: the prediction resized to the ground truth
    with 'nearest' (the head's default upsample_type), the ground truth resized to the prediction bilinearly with
    align_corners=True."""
    return interpolate_nearest(pred, depth_gt.shape[1:]), interpolate_bilinear_ac(depth_gt, pred.shape[1:])


def sigloss(pred_up: np.ndarray, gt: np.ndarray, lam: float = 0.15, eps: float = 1e-3) -> float:
    """SigLoss(valid_mask=True): g = log(input + eps) - log(target + eps) on target > 0;
    sqrt(var(g) + 0.15 mean(g)^2), var unbiased (torch.var)."""
    valid = gt > 0
    g = np.log(pred_up[valid].astype(np.float64) + eps) - np.log(gt[valid].astype(np.float64) + eps)
    return float(np.sqrt(np.var(g, ddof=1) + lam * np.mean(g) ** 2))


def robust(pred_up: np.ndarray, gt: np.ndarray, alpha: float = 1.0, c: float = 2.0) -> float:
    """RobustLoss(log=False): error = gt - pred on gt > 0; |a-2|/a (((e/c)^2/|a-2| + 1)^(a/2) - 1), mean."""
    valid = gt > 0
    e = gt[valid].astype(np.float64) - pred_up[valid]
    b = abs(alpha - 2)
    return float(np.mean(b / alpha * (np.power((e / c) ** 2 / b + 1, alpha / 2) - 1)))


def grad_loss(pred: np.ndarray, gt_small: np.ndarray, mode: str = "authors_code") -> float:
    """GradDepthLoss(valid_mask=True) on the prediction and the downsampled ground truth.

    authors_code, literally: gt[gt == 0] = inf; forward differences; NaN / inf target differences := 0 (then the
    same test on the now finite targets to mask the prediction: a no-op); mean |dp - dg| over all x pairs plus
    the mean over all y pairs. paper: each mean over the pairs of two valid pixels only. none: the differences of
    the ground truth with holes at 0 m, every pair."""
    with np.errstate(invalid="ignore"):
        g = gt_small.astype(np.float64).copy()
        if mode != "none":
            g[g == 0] = np.inf
        total = 0.0
        for axis in (2, 1):
            n = pred.shape[axis]
            dp = np.take(pred, range(1, n), axis).astype(np.float64) - np.take(pred, range(n - 1), axis)
            dg = np.take(g, range(1, n), axis) - np.take(g, range(n - 1), axis)
            bad = ~np.isfinite(dg)
            dg[bad] = 0
            dp[np.isnan(dg) | np.isinf(dg)] = 0  # the code's prediction mask: the targets are finite by now
            err = np.abs(dp - dg)
            total += err[~bad].mean() if mode == "paper" else err.mean()
    return float(total)


def vnl_points(depth: np.ndarray, p123, focal=(518.85790117450188, 519.46961112127485), input_size=(480, 640)) -> np.ndarray:
    """transfer_xyz + form_pw_groups: ``[B, N, 3 (xyz), 3 (p1, p2, p3)]`` float32 points of ``depth`` ``[B, h, w]``,
    u0 = w // 2, v0 = h // 2, fx = focal_x * w / input_w, fy = focal_y * h / input_h, x = (u - u0) |z| / fx."""
    b, h, w = depth.shape
    fx = F32(focal[0]) * F32(w) / F32(input_size[1])
    fy = F32(focal[1]) * F32(h) / F32(input_size[0])
    u = np.tile(np.arange(w, dtype=F32), (h, 1)) - F32(w // 2)
    v = np.tile(np.arange(h, dtype=F32), (w, 1)).T - F32(h // 2)
    with np.errstate(invalid="ignore"):
        x, y, z = u * np.abs(depth) / fx, v * np.abs(depth) / fy, depth
    pw = np.stack([x, y, z], axis=-1).astype(F32)  # [b, h, w, 3]
    return np.stack([pw[:, p123[f"p{k}_y"], p123[f"p{k}_x"], :] for k in (1, 2, 3)], axis=3)


def select_index(h: int, w: int, idx: np.ndarray) -> dict:
    """select_index's dict from flat indices ``idx`` ``[N, 3]`` (p = y * W + x; x = p % W, y = int(p / W))."""
    out = {}
    for k in range(3):
        out[f"p{k + 1}_x"] = idx[:, k] % w
        out[f"p{k + 1}_y"] = (idx[:, k] / w).astype(np.int64)
    return out


def vnl_filter_mask(pw: np.ndarray, delta_cos=0.867, delta_diff=0.005, delta_z=0.1) -> np.ndarray:
    """filter_mask on ``pw`` ``[B, N, 3, 3]``: ``[B, N]`` bool (kept)."""
    pw_diff = np.stack([pw[..., 1] - pw[..., 0], pw[..., 2] - pw[..., 0], pw[..., 2] - pw[..., 1]], axis=3)
    b, n = pw_diff.shape[:2]
    query = pw_diff.reshape(b * n, 3, 3).transpose(0, 2, 1)  # [bn, edge, xyz]
    q_norm = np.linalg.norm(query, axis=2).astype(F32)
    nm = q_norm[:, :, None] * q_norm[:, None, :]
    energy = query @ query.transpose(0, 2, 1)
    norm_energy = (energy / (nm + F32(1e-8))).reshape(b * n, -1)
    mask_cos = (np.sum((norm_energy > delta_cos) | (norm_energy < -delta_cos), axis=1) > 3).reshape(b, n)
    mask_pad = np.sum(pw[:, :, 2, :] > delta_z, axis=2) == 3
    mask_x = np.sum(np.abs(pw_diff[:, :, 0, :]) < delta_diff, axis=2) > 0
    mask_y = np.sum(np.abs(pw_diff[:, :, 1, :]) < delta_diff, axis=2) > 0
    mask_z = np.sum(np.abs(pw_diff[:, :, 2, :]) < delta_diff, axis=2) > 0
    return mask_pad & ~((mask_x & mask_y & mask_z) | mask_cos)


def vnl(pred: np.ndarray, gt_small: np.ndarray, idx: np.ndarray, focal=(518.85790117450188, 519.46961112127485),
        input_size=(480, 640), trim: float = 0.25) -> float:
    """VNLLoss.forward(pred_depth=pred, gt_depth=gt_small, select=True) on the triplets ``idx`` ``[N, 3]``,
    literally: gt[gt == 0] = inf; the two maps swap names; the filter runs on the points of what is now called
    gt (the prediction); normals of both, a zero norm + 0.01; NaN / inf components of the (real) ground truth's
    normal zeroed on both sides; per triplet sum |.|; sort, drop int(0.25 K), mean (0 if nothing is left)."""
    gt = gt_small.astype(F32).copy()
    gt[gt == 0] = np.inf
    pred_depth, gt_depth = gt, pred.astype(F32)  # the code's swap
    p123 = select_index(gt_depth.shape[1], gt_depth.shape[2], idx)
    with np.errstate(invalid="ignore"):
        pw_gt = vnl_points(gt_depth, p123, focal, input_size)  # the prediction's points
        pw_pred = vnl_points(pred_depth, p123, focal, input_size)  # the ground truth's points
        mask = vnl_filter_mask(pw_gt)
        gt_points, dt_points = pw_gt[mask][None], pw_pred[mask][None]  # [1, K, 3, 3]

        def normals(pts):
            n = np.cross(pts[..., 1] - pts[..., 0], pts[..., 2] - pts[..., 0], axis=2)
            norm = np.linalg.norm(n, axis=2, keepdims=True)
            return n / (norm + F32(0.01) * (norm == 0))

        gt_normal, dt_normal = normals(gt_points), normals(dt_points)
        bad = np.isnan(dt_normal)
        gt_normal[bad], dt_normal[bad] = 0, 0
        bad = np.isinf(dt_normal)
        gt_normal[bad], dt_normal[bad] = 0, 0
    loss = np.sort(np.abs(gt_normal - dt_normal).sum(axis=2).sum(axis=0).astype(np.float64))
    loss = loss[int(loss.shape[0] * trim):]
    return float(loss.mean()) if loss.shape[0] > 0 else 0.0


def auto_reweight(losses, params) -> float:
    """AutoReweightLoss: sum_i 0.5 / p_i^2 * L_i + log(1 + p_i^2) (each L_i already times its loss_weight)."""
    return float(sum(0.5 / p ** 2 * loss + np.log(1 + p ** 2) for loss, p in zip(losses, params)))


# ---- distillation (DistillWrapper + SimilarityMSELoss) ------------------------------------------------------
def distill_similarity(feat_s: np.ndarray, feat_t: np.ndarray, depth_gt: np.ndarray) -> float:
    """``[B, H, W, C]`` features: the ground truth resized to the student's feature size bilinearly with
    align_corners=True (DistillWrapper), then (SimilarityMSELoss, 1x1 patches) nearest to the same size (an
    identity); per image the valid pixels' features L2-normalised over channels, affinity matrices, mean squared
    difference; the sum over images / B."""
    resized = interpolate_bilinear_ac(depth_gt, feat_s.shape[1:3])
    resized = interpolate_nearest(resized, feat_s.shape[1:3])
    total = 0.0
    for i in range(feat_s.shape[0]):
        valid = resized[i] > 0
        s, t = feat_s[i][valid].astype(np.float64), feat_t[i][valid].astype(np.float64)  # [n, C]
        s = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        total += np.mean((s @ s.T - t @ t.T) ** 2)
    return float(total / feat_s.shape[0])
