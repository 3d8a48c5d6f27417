"""MAI 2022 monocular depth challenge metrics (NumPy reference + streaming TF), challenge score, constant baseline.

Definition (identical in `image_metrics` and `MAIMetrics`), for ONE image, inputs in metres:

1. convert to millimetres (x 1000); predictions < 1 mm and GT < 1 mm are set to 1 mm;
2. valid pixels: GT > 1 mm (0 = "no depth" in the uint16 PNGs, so it becomes 1 mm and drops out);
3. on the valid pixels (pred/gt below in metres; ratios and logs do not depend on the unit):
   * ``si_rmse`` = sqrt(mean(d^2) - mean(d)^2), d = ln(pred) - ln(gt)  (natural log; clamped at 0 before sqrt)
   * ``rmse``    = sqrt(mean((pred - gt)^2))                             [metres]
   * ``log10``   = mean |log10(pred) - log10(gt)|
   * ``abs_rel`` = mean |pred - gt| / gt
   * ``sq_rel``  = mean (pred - gt)^2 / gt                               [metres: (m^2)/m]
   * ``delta1/2/3`` = fraction of pixels with max(pred/gt, gt/pred) < 1.25, 1.25^2, 1.25^3.

The reported number is the MEAN OVER IMAGES of the per-image metrics (not a metric of all pixels pooled). An
image with no valid pixel is skipped and counted (``n_skipped``), it never produces NaN; if every image was
skipped the means are NaN (nothing was measured).

Source check (searched the public code corpus): the LiteDepth authors' toolbox evaluates MAI 2022 with
``MobileAI2022Dataset.pre_eval`` / ``metrics(img, target)``, whose docstring says it is taken from the
challenge's own ``aiff22/MAI-2021-Workshop/depth_estimation/losses_python.py``: it multiplies the prediction by
the depth scale (metres -> mm), sets ``img[img < 1] = 1`` and ``target[target < 1] = 1``, masks ``target > 1``,
computes RMSE of ``(target - img) / 1000`` (metres) and si-RMSE as
``sqrt(sum(log_diff^2)/n - sum(log_diff)^2/n^2)`` with ``np.log`` (natural log), per image; the per-image values
are then averaged with ``np.nanmean``. That is exactly steps 1-3 above. log10 / abs_rel / sq_rel / delta are not
in that script (the challenge ranks on si-RMSE and runtime; the report tables also list RMSE, log10 and REL); they
are the standard Eigen-style definitions computed on the same valid pixels and clamped values.

Deviation (documented, negligible): GT arriving as float32 metres (uint16 mm / 1000) does not round-trip to an
exact integer in mm (1 mm -> 1.0000000475 mm), so validity is tested as ``gt_mm > 1 + 1e-3`` to keep a 1 mm GT
pixel invalid as in the uint16 reference. Sums are accumulated in float64.

Score: `mai_score` (see its docstring for the fitted constant C = 1/640 per second).

Standard protocol (`standard_image_metrics`, `StandardMetrics`): the metrics of the public toolboxes (BTS,
Monocular-Depth-Estimation-Toolbox ``depth/core/evaluation/metrics.py``) for NYU, KITTI and the other presets,
per image then the mean over images (``nanmean``). Per image: valid = ``min_depth < gt < max_depth`` inside the
evaluation crop (NYU Eigen rows 45:471 cols 41:601; KITTI Garg / Eigen fractions of the 352x1216 frame, see
`data.datasets`); optional median scaling (``align="median"``: pred *= median(gt) / median(pred) on the valid
pixels, for relative-depth models, as monodepth2 does); the prediction clamped to [min_depth, max_depth] (BTS's
eval; the toolbox's heads cannot leave that range); then with e = ln pred - ln gt:
  abs_rel = mean |gt - pred| / gt, sq_rel = mean (gt - pred)^2 / gt, rmse = sqrt(mean (gt - pred)^2),
  rmse_log = sqrt(mean e^2), log10 = mean |log10 gt - log10 pred|, silog = 100 sqrt(mean e^2 - (mean e)^2),
  delta_i = fraction of max(gt/pred, pred/gt) < 1.25^i.
An image without a valid pixel is skipped and counted (the toolbox's NaN row, dropped by nanmean).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from litedepth_tf.common.progress import track
from litedepth_tf.data.pipeline import list_pairs

METRIC_KEYS = ("si_rmse", "rmse", "log10", "abs_rel", "sq_rel", "delta1", "delta2", "delta3")
MM_PER_M = 1000.0
VALID_EPS_MM = 1e-3  # gt_mm > 1 + eps: see the module docstring
DELTA = 1.25
MAI_SCORE_C = 1.0 / 640.0  # per second of runtime, see mai_score


# --------------------------------------------------------------------------------------------------- NumPy


def _as_image(x, what):
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x, np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 4 and a.shape[0] == 1 and a.shape[-1] == 1:
        a = a[0, ..., 0]
    if a.ndim != 2:
        raise ValueError(f"{what}: expected one image [H, W] or [H, W, 1] (or [1, H, W, 1]), got shape {a.shape}")
    return a


def image_metrics(pred_m, gt_m) -> dict | None:
    """MAI metrics of ONE image (metres in, [H, W] / [H, W, 1]); None if it has no valid GT pixel."""
    pred, gt = _as_image(pred_m, "pred"), _as_image(gt_m, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
    pred_mm = np.maximum(pred * MM_PER_M, 1.0)
    gt_mm = np.maximum(gt * MM_PER_M, 1.0)
    valid = gt_mm > 1.0 + VALID_EPS_MM
    n = int(valid.sum())
    if n == 0:
        return None
    p, g = pred_mm[valid] / MM_PER_M, gt_mm[valid] / MM_PER_M
    d = np.log(p) - np.log(g)
    ratio = np.maximum(p / g, g / p)
    err = p - g
    return {
        "si_rmse": float(np.sqrt(max(np.mean(d * d) - np.mean(d) ** 2, 0.0))),
        "rmse": float(np.sqrt(np.mean(err * err))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "abs_rel": float(np.mean(np.abs(err) / g)),
        "sq_rel": float(np.mean(err * err / g)),
        "delta1": float(np.mean(ratio < DELTA)),
        "delta2": float(np.mean(ratio < DELTA ** 2)),
        "delta3": float(np.mean(ratio < DELTA ** 3)),
    }


def mean_metrics(per_image) -> dict:
    """Mean over images of `image_metrics` results; None entries (no valid pixel) are skipped and counted.

    Returns the 8 metric keys plus ``n_images`` (images averaged) and ``n_skipped``."""
    per_image = list(per_image)
    kept = [m for m in per_image if m is not None]
    out = {k: (float(np.mean([m[k] for m in kept])) if kept else float("nan")) for k in METRIC_KEYS}
    out["n_images"] = len(kept)
    out["n_skipped"] = len(per_image) - len(kept)
    return out


def _split_images(x):
    """Yields single [H, W] images from [H, W], [H, W, 1], [B, H, W, 1] arrays / tensors or dataset batches."""
    if isinstance(x, dict):
        x = x["depth"]
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 1):
        yield a.reshape(a.shape[:2])
    elif a.ndim == 4 and a.shape[-1] == 1:
        yield from a[..., 0]
    elif a.ndim == 3:
        yield from a
    else:
        raise ValueError(f"expected GT depth [H, W], [H, W, 1] or [B, H, W, 1], got shape {a.shape}")


def constant_baseline(median_depth_m: float, gts) -> dict:
    """`mean_metrics` of predicting the constant `median_depth_m` (metres) for every GT in `gts` (an iterable of
    GT depth maps in metres, [H, W] / [H, W, 1] / [B, H, W, 1], or dataset batches with a "depth" key)."""
    c = float(median_depth_m)
    return mean_metrics(image_metrics(np.full(g.shape, c), g) for x in gts for g in _split_images(x))


def _evenly_spaced(items, max_files):
    if not max_files or max_files <= 0 or max_files >= len(items):
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, int(max_files)).round().astype(int))
    return [items[i] for i in idx]


def median_train_depth(data_root, split: str = "train", max_files: int | None = None, max_depth: float | None = None,
                       progress: bool = True, pairs=None, depth_scale: float = MM_PER_M) -> float:
    """Median depth (metres) over every valid pixel (uint16 mm != 0) of the depth PNGs of ``data_root/split``.

    Exact, with O(65536) memory: a histogram of the uint16 values. `max_files` reads that many evenly spaced
    files; `max_depth` (metres) additionally drops deeper pixels (e.g. `constants.MAX_DEPTH` to match the input
    pipeline's cap). A file that cannot be decoded or has more than one channel is left out with a warning
    naming it (as the input pipeline skips bad samples). ``pairs``: these ``(stem, rgb, depth)`` instead of
    listing ``data_root/split`` (other data sets); ``depth_scale``: stored values per metre (1000 = mm)."""

    pairs = _evenly_spaced(list_pairs(data_root, split, check=False) if pairs is None else list(pairs), max_files)
    hist = np.zeros(65536, np.int64)
    for _, _, depth_path in track(pairs, desc=f"median depth ({split})", unit="file",
                                  disable=None if progress else True):
        try:
            with Image.open(depth_path) as im:
                a = np.asarray(im)
        except Exception as err:  # noqa: BLE001 - corrupt / truncated / huge: left out, as the input pipeline does
            logging.getLogger("litedepth_tf.evaluation.metrics").warning("median depth: skipping %s: cannot decode (%s: %s)",
                                                              depth_path, type(err).__name__, err)
            continue
        if a.ndim != 2:
            logging.getLogger("litedepth_tf.evaluation.metrics").warning(
                "median depth: skipping %s: %s array, expected a single-channel depth PNG", depth_path, a.shape)
            continue
        if a.dtype != np.uint16:
            if a.dtype.kind not in "iu" or a.min() < 0 or a.max() > 65535:
                raise ValueError(f"{depth_path}: expected a uint16 millimetre depth PNG, got dtype {a.dtype}")
            a = a.astype(np.uint16)
        hist += np.bincount(a.ravel(), minlength=65536)
    hist[0] = 0
    if max_depth is not None:
        hist[int(np.floor(max_depth * depth_scale)) + 1:] = 0
    total = int(hist.sum())
    if total == 0:
        raise ValueError(f"no valid depth pixel under {os.path.join(os.fspath(data_root), split)}")
    cum = np.cumsum(hist)
    lo = int(np.searchsorted(cum, (total - 1) // 2 + 1))  # 0-based ranks (total-1)//2 and total//2
    hi = int(np.searchsorted(cum, total // 2 + 1))
    return (lo + hi) / 2.0 / depth_scale


def mai_score(si_rmse, runtime_s, c: float = MAI_SCORE_C):
    """MAI 2022 depth challenge score = 2^(-20 * si_rmse) / (C * runtime_s), runtime in SECONDS.

    Fit of C (LiteDepth paper, Tab. 1 "MAI&AIM 2022 challenge results", /work/shared/reference/
    litedepth_paper.txt): solving C = 2^(-20 si) / (score * runtime_s) for each row gives
      Zhenyu Li (LiteDepth) 0.311 / 37 ms / 232.04 -> C = 0.00156253;  ChaoMI 0.299 / 54 / 187.77 -> 0.00156250;
      parkzyzhang 0.303 / 68 / 141.07 -> 0.00156248;  Byung Hyun Lee 0.338 / 142 / 41.58 -> 0.00156266;
      (TCL 0.00156901, RocheL 0.00157547, mvc 0.00157997: si-RMSE is printed to 3 decimals, and +-0.0005 in si
      moves 2^(-20 si) by +-0.7%, which covers these).
    So C = 0.0015625 = 1/640 per second (= 1.5625e-6 per millisecond). Check: 2^(-6.22) / (0.037 / 640) = 232.04.
    """
    return 2.0 ** (-20.0 * np.asarray(si_rmse, np.float64)) / (c * np.asarray(runtime_s, np.float64))


# ------------------------------------------------------------------------------------------------ streaming TF


def _to_bhw(x):
    """[B, H, W, 1] / [B, H, W] / [H, W, 1] / [H, W] -> float64 [B, H, W] (rank must be static)."""
    x = tf.convert_to_tensor(x)
    x = tf.cast(x, tf.float64)
    rank = x.shape.rank
    if rank == 4:
        if x.shape[-1] is not None and x.shape[-1] != 1:
            raise ValueError(f"expected one depth channel, got shape {x.shape}")
        return x[..., 0]
    if rank == 3:
        return x[..., 0] if x.shape[-1] == 1 else x
    if rank == 2:
        return x[tf.newaxis]
    raise ValueError(f"expected depth [B, H, W, 1] or [H, W], got rank {rank}")


def batch_image_metrics(pred, gt):
    """TF: per-image metrics of a batch (metres in). Returns (dict of float64 [B], valid float64 [B] 1/0)."""
    pred_mm = tf.maximum(_to_bhw(pred) * MM_PER_M, 1.0)
    gt_mm = tf.maximum(_to_bhw(gt) * MM_PER_M, 1.0)
    mask = tf.cast(gt_mm > 1.0 + VALID_EPS_MM, tf.float64)
    n = tf.reduce_sum(mask, axis=[1, 2])
    inv_n = 1.0 / tf.maximum(n, 1.0)
    p, g = pred_mm / MM_PER_M, gt_mm / MM_PER_M  # >= 1e-3 m everywhere: logs / ratios are finite

    def mean(v):
        return tf.reduce_sum(v * mask, axis=[1, 2]) * inv_n

    d = tf.math.log(p) - tf.math.log(g)
    err = p - g
    ratio = tf.maximum(p / g, g / p)
    out = {
        "si_rmse": tf.sqrt(tf.maximum(mean(d * d) - tf.square(mean(d)), 0.0)),
        "rmse": tf.sqrt(mean(err * err)),
        "log10": mean(tf.abs(d)) / np.log(10.0),
        "abs_rel": mean(tf.abs(err) / g),
        "sq_rel": mean(err * err / g),
    }
    for i, key in enumerate(("delta1", "delta2", "delta3")):
        out[key] = mean(tf.cast(ratio < DELTA ** (i + 1), tf.float64))
    return out, tf.cast(n > 0, tf.float64)


class MAIMetrics(tf.Module):
    """Streaming MAI metrics: per-image values summed over images (float64 variables), mean in `result()`.

    ``update_state(pred, gt)``: metres, [B, H, W, 1] (each batch element is one image) or [H, W], NumPy or
    tensors; only TF ops, so it also runs inside a `tf.function`. ``result()``: dict of float32 scalars with keys
    `METRIC_KEYS` (NaN if no image had a valid pixel). ``n_images`` / ``n_skipped``: images averaged / skipped
    (no valid GT pixel). ``reset_state()`` zeroes everything.
    """

    def __init__(self, name: str = "mai_metrics"):
        super().__init__(name=name)
        with tf.init_scope():
            self._sums = {k: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=f"sum_{k}")
                          for k in METRIC_KEYS}
            self._count = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="n_images")
            self._skipped = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="n_skipped")

    def update_state(self, pred, gt):
        values, ok = batch_image_metrics(pred, gt)
        for k in METRIC_KEYS:
            self._sums[k].assign_add(tf.reduce_sum(values[k] * ok))
        self._count.assign_add(tf.reduce_sum(ok))
        self._skipped.assign_add(tf.reduce_sum(1.0 - ok))

    def result(self) -> dict:
        n = self._count
        return {k: tf.cast(tf.where(n > 0, self._sums[k] / tf.maximum(n, 1.0), tf.constant(np.nan, tf.float64)),
                           tf.float32) for k in METRIC_KEYS}

    def reset_state(self):
        for v in [*self._sums.values(), self._count, self._skipped]:
            v.assign(0.0)

    reset_states = reset_state

    @property
    def n_images(self) -> int:
        return int(self._count.numpy())

    @property
    def n_skipped(self) -> int:
        return int(self._skipped.numpy())


# ------------------------------------------------------------------------------------------------ standard protocol

STANDARD_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3")


def crop_mask(shape, box):
    """Boolean [H, W]: True inside ``box`` (r0, r1, c0, c1), or everywhere for None."""
    if box is None:
        return np.ones(shape, bool)
    m = np.zeros(shape, bool)
    r0, r1, c0, c1 = box
    m[r0:r1, c0:c1] = True
    return m


def standard_image_metrics(pred_m, gt_m, min_depth: float = 1e-3, max_depth: float = 80.0, box=None,
                           align: str = "none") -> dict | None:
    """The standard metrics of ONE image (see the module docstring); None without a valid pixel."""
    pred, gt = _as_image(pred_m, "pred"), _as_image(gt_m, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
    mask = (gt > min_depth) & (gt < max_depth) & crop_mask(gt.shape, box)
    if not mask.any():
        return None
    g, p = gt[mask], pred[mask]
    if align == "median":
        p = p * (np.median(g) / max(float(np.median(p)), 1e-12))
    elif align != "none":
        raise ValueError(f"align must be 'none' or 'median', got {align!r}")
    p = np.clip(np.where(np.isfinite(p), p, max_depth), min_depth, max_depth)
    thresh = np.maximum(g / p, p / g)
    e = np.log(p) - np.log(g)
    return {
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(e ** 2))),
        "log10": float(np.mean(np.abs(np.log10(g) - np.log10(p)))),
        "silog": float(100.0 * np.sqrt(max(np.mean(e ** 2) - np.mean(e) ** 2, 0.0))),
        "delta1": float(np.mean(thresh < DELTA)),
        "delta2": float(np.mean(thresh < DELTA ** 2)),
        "delta3": float(np.mean(thresh < DELTA ** 3)),
    }


class StandardMetrics:
    """Host-side accumulator of `standard_image_metrics`: ``update(pred, gt)`` per image (metres, [H, W] /
    [H, W, 1] / [1, H, W, 1]); ``result()`` the mean over images with a valid pixel (NaN if none), plus
    ``n_images`` / ``n_skipped``."""

    def __init__(self, min_depth=1e-3, max_depth=80.0, box=None, align="none"):
        self.min_depth, self.max_depth, self.box, self.align = float(min_depth), float(max_depth), box, align
        self.rows = []

    def update(self, pred, gt):
        self.rows.append(standard_image_metrics(pred, gt, self.min_depth, self.max_depth, self.box, self.align))

    def result(self) -> dict:
        kept = [r for r in self.rows if r is not None]
        out = {k: (float(np.mean([r[k] for r in kept])) if kept else float("nan")) for k in STANDARD_KEYS}
        out["n_images"], out["n_skipped"] = len(kept), len(self.rows) - len(kept)
        return out
