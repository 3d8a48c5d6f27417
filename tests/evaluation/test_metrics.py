"""MAI metrics: NumPy reference vs streaming TF, hand-made cases, per-image averaging, score, baseline, median."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from litedepth_tf.evaluation import metrics as M
from litedepth_tf.evaluation.metrics import (METRIC_KEYS, MAIMetrics, constant_baseline, image_metrics, mai_score,
                                  mean_metrics, median_train_depth)


def _random_pair(rng, h=24, w=32):
    gt = rng.uniform(0.5, 40.0, (h, w))
    gt[rng.random((h, w)) < 0.2] = 0.0  # invalid
    gt[0, :3] = 0.0005  # < 1 mm -> invalid
    pred = gt * np.exp(rng.normal(0.1, 0.3, (h, w)))
    pred[rng.random((h, w)) < 0.05] = rng.uniform(-1.0, 0.0009)  # < 1 mm (and negative) -> clamped to 1 mm
    return pred.astype(np.float32), gt.astype(np.float32)


def _result(metric):
    return {k: float(v) for k, v in metric.result().items()}


def test_numpy_and_tf_agree_per_image_and_streaming():
    rng = np.random.default_rng(0)
    pairs = [_random_pair(rng) for _ in range(7)]
    metric = MAIMetrics()
    for b in range(0, 6, 3):  # two batches of 3 ...
        metric.update_state(np.stack([p for p, _ in pairs[b:b + 3]])[..., None],
                            tf.constant(np.stack([g for _, g in pairs[b:b + 3]])[..., None]))
    metric.update_state(*pairs[6])  # ... and one [H, W] image
    ref = mean_metrics(image_metrics(p, g) for p, g in pairs)
    got = _result(metric)
    assert set(got) == set(METRIC_KEYS)
    assert all(v.dtype == tf.float32 for v in metric.result().values())
    for k in METRIC_KEYS:
        assert got[k] == pytest.approx(ref[k], rel=1e-6, abs=1e-6), k
    assert ref["n_images"] == metric.n_images == 7 and metric.n_skipped == 0
    # the per-image values agree too
    values, ok = M.batch_image_metrics(pairs[0][0], pairs[0][1])
    single = image_metrics(*pairs[0])
    for k in METRIC_KEYS:
        assert float(values[k][0]) == pytest.approx(single[k], rel=1e-9, abs=1e-12)


def test_update_state_in_tf_function():
    rng = np.random.default_rng(1)
    p, g = _random_pair(rng)
    metric = MAIMetrics()
    step = tf.function(metric.update_state)
    step(tf.constant(p[None, ..., None]), tf.constant(g[None, ..., None]))
    step(tf.constant(p[None, ..., None]), tf.constant(g[None, ..., None]))
    ref = image_metrics(p, g)
    for k, v in _result(metric).items():
        assert v == pytest.approx(ref[k], rel=1e-6, abs=1e-6)
    assert metric.n_images == 2
    metric.reset_state()
    assert metric.n_images == 0 and metric.n_skipped == 0
    assert all(math.isnan(v) for v in _result(metric).values())


def test_identity_and_scaled_prediction():
    gt = np.random.default_rng(2).uniform(1.0, 10.0, (16, 16)).astype(np.float32)
    gt[:4] = 0.0
    exact = image_metrics(gt, gt)
    assert exact["si_rmse"] == pytest.approx(0.0, abs=1e-7)
    assert exact["rmse"] == 0.0 and exact["abs_rel"] == 0.0 and exact["log10"] == 0.0
    assert exact["delta1"] == exact["delta2"] == exact["delta3"] == 1.0
    double = image_metrics(2 * gt, gt)
    assert double["si_rmse"] == pytest.approx(0.0, abs=1e-6)  # scale invariant
    assert double["abs_rel"] == pytest.approx(1.0, rel=1e-6)
    assert double["log10"] == pytest.approx(math.log10(2.0), rel=1e-6)
    assert double["delta1"] == double["delta2"] == double["delta3"] == 0.0  # ratio 2 >= 1.25^3 = 1.953
    assert image_metrics(1.9 * gt, gt)["delta3"] == 1.0
    v = gt[4:].astype(np.float64)
    assert double["rmse"] == pytest.approx(np.sqrt(np.mean(v ** 2)), rel=1e-6)  # metres
    assert double["sq_rel"] == pytest.approx(np.mean(v), rel=1e-6)  # (2g - g)^2 / g = g metres
    metric = MAIMetrics()
    metric.update_state(2 * gt, gt)
    for k, val in _result(metric).items():
        assert val == pytest.approx(double[k], rel=1e-6, abs=1e-6)


def test_prediction_below_1mm_is_clamped_and_invalid_gt_ignored():
    gt = np.array([[2.0, 0.0], [0.0005, 0.001]], np.float32)  # one valid pixel (2 m); 0.5 mm / 1 mm invalid
    for p in (0.0, -3.0, 0.0005):
        m = image_metrics(np.full_like(gt, p), gt)
        assert m["rmse"] == pytest.approx(2.0 - 0.001, rel=1e-6)  # pred clamped to 1 mm
        assert m["abs_rel"] == pytest.approx((2.0 - 0.001) / 2.0, rel=1e-6)
        assert m["si_rmse"] == 0.0  # single valid pixel
    # values at the invalid pixels do not matter
    a = image_metrics(np.array([[3.0, 100.0], [5.0, 7.0]]), gt)
    b = image_metrics(np.array([[3.0, 0.0], [0.0, 0.0]]), gt)
    assert a == b


def test_no_valid_pixel_is_skipped_not_nan():
    gt = np.zeros((8, 8), np.float32)
    assert image_metrics(np.ones_like(gt), gt) is None
    good_p, good_g = np.full((8, 8), 2.0), np.full((8, 8), 1.0)
    ref = mean_metrics([image_metrics(good_p, good_g), image_metrics(np.ones_like(gt), gt)])
    assert ref["n_images"] == 1 and ref["n_skipped"] == 1 and ref["abs_rel"] == pytest.approx(1.0)
    metric = MAIMetrics()
    metric.update_state(np.stack([good_p, np.ones_like(good_p)])[..., None], np.stack([good_g, gt])[..., None])
    got = _result(metric)
    assert not any(math.isnan(v) for v in got.values())
    assert got["abs_rel"] == pytest.approx(1.0) and metric.n_images == 1 and metric.n_skipped == 1


def test_per_image_mean_differs_from_pooled():
    # image A: 4 pixels, exact; image B: 1 valid pixel, pred 2x -> per-image abs_rel mean = (0 + 1) / 2 = 0.5,
    # pooled over the 5 pixels = 1 / 5 = 0.2; rmse likewise (0 + 3) / 2 = 1.5 vs sqrt(9 / 5).
    gt_a, pred_a = np.full((2, 2), 5.0), np.full((2, 2), 5.0)
    gt_b, pred_b = np.array([[3.0, 0.0], [0.0, 0.0]]), np.array([[6.0, 1.0], [1.0, 1.0]])
    metric = MAIMetrics()
    metric.update_state(np.stack([pred_a, pred_b])[..., None], np.stack([gt_a, gt_b])[..., None])
    got = _result(metric)
    assert got["abs_rel"] == pytest.approx(0.5)
    assert got["rmse"] == pytest.approx(1.5)
    assert got["delta1"] == pytest.approx(0.5)
    pooled = image_metrics(np.concatenate([pred_a.ravel(), pred_b.ravel()])[None],
                           np.concatenate([gt_a.ravel(), gt_b.ravel()])[None])
    assert pooled["abs_rel"] == pytest.approx(0.2) and pooled["rmse"] == pytest.approx(math.sqrt(9 / 5))
    assert got["abs_rel"] != pytest.approx(pooled["abs_rel"])


def test_si_rmse_matches_challenge_formula():
    """The challenge script's form: sqrt(sum(ld^2)/n - sum(ld)^2/n^2), ld = ln(img_mm) - ln(target_mm) masked."""
    rng = np.random.default_rng(3)
    pred, gt = _random_pair(rng)
    img, target = pred.astype(np.float64) * 1000, gt.astype(np.float64) * 1000
    img[img < 1] = 1
    target[target < 1] = 1
    mask = target > 1 + 1e-3
    ld = (np.log(img) - np.log(target)) * mask
    n = mask.sum()
    si = np.sqrt(np.sum(ld ** 2) / n - np.sum(ld) ** 2 / n ** 2)
    rmse = np.sqrt(np.sum(((target - img) * mask / 1000) ** 2) / n)
    m = image_metrics(pred, gt)
    assert m["si_rmse"] == pytest.approx(si, rel=1e-9) and m["rmse"] == pytest.approx(rmse, rel=1e-9)


def test_mai_score_reproduces_paper_table():
    assert M.MAI_SCORE_C == pytest.approx(1 / 640)
    assert float(mai_score(0.311, 0.037)) == pytest.approx(232.04, abs=0.01)  # LiteDepth (Zhenyu Li)
    assert float(mai_score(0.299, 0.054)) == pytest.approx(187.77, abs=0.01)  # ChaoMI
    assert float(mai_score(0.303, 0.068)) == pytest.approx(141.07, abs=0.01)  # parkzyzhang
    assert float(mai_score(0.338, 0.142)) == pytest.approx(41.58, abs=0.01)  # Byung Hyun Lee
    assert float(mai_score(0.311, 0.037, c=2 / 640)) == pytest.approx(232.04 / 2, abs=0.01)


def test_constant_baseline_matches_direct_computation():
    rng = np.random.default_rng(4)
    gts = [_random_pair(rng)[1] for _ in range(3)]
    ref = mean_metrics(image_metrics(np.full_like(g, 4.0), g) for g in gts)
    assert constant_baseline(4.0, gts) == ref
    batch = np.stack(gts)[..., None]
    assert constant_baseline(4.0, [{"depth": tf.constant(batch)}]) == ref
    assert constant_baseline(4.0, [batch[:2], batch[2]]) == ref


def _write_depth(folder, name, mm):
    os.makedirs(os.path.join(folder, "rgb"), exist_ok=True)
    os.makedirs(os.path.join(folder, "depth"), exist_ok=True)
    Image.fromarray(np.zeros(mm.shape + (3,), np.uint8)).save(os.path.join(folder, "rgb", name))
    Image.fromarray(mm.astype(np.uint16)).save(os.path.join(folder, "depth", name))


def test_median_train_depth_exact(tmp_path):
    rng = np.random.default_rng(5)
    maps = [rng.integers(0, 40000, (6, 8)).astype(np.uint16) for _ in range(3)]
    maps[0][0, 0] = 0
    maps[1][:2] = 0
    for i, mm in enumerate(maps):
        _write_depth(str(tmp_path / "train"), f"{i:03d}.png", mm)
    allv = np.concatenate([m[m > 0] for m in maps]).astype(np.float64)
    assert median_train_depth(tmp_path, progress=False) == pytest.approx(np.median(allv) / 1000, abs=1e-12)
    odd = np.concatenate([maps[0][maps[0] > 0], maps[2][maps[2] > 0]]).astype(np.float64)
    assert median_train_depth(tmp_path, max_files=2, progress=False) == pytest.approx(np.median(odd) / 1000)
    capped = allv[allv <= 20000]
    assert median_train_depth(tmp_path, max_depth=20.0, progress=False) == pytest.approx(np.median(capped) / 1000)
    with pytest.raises(FileNotFoundError):
        median_train_depth(tmp_path, split="missing", progress=False)
