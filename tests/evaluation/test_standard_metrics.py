"""The standard protocol (evaluation.metrics.standard_image_metrics / StandardMetrics) against a NumPy
transcription of the public toolbox's formulas (Monocular-Depth-Estimation-Toolbox depth/core/evaluation/metrics.py
``calculate`` + the datasets' ``eval_mask``), on hand-made cases, to 1e-6."""

import numpy as np
import pytest

from litedepth_tf.data import datasets
from litedepth_tf.evaluation.metrics import STANDARD_KEYS, StandardMetrics, standard_image_metrics


def toolbox_reference(gt, pred, min_depth, max_depth, box=None):
    """The toolbox, transcribed: eval mask (min < gt < max, inside the crop), then ``calculate(gt, pred)``."""
    valid = np.logical_and(gt > min_depth, gt < max_depth)
    if box is not None:
        eval_mask = np.zeros(valid.shape)
        eval_mask[box[0]:box[1], box[2]:box[3]] = 1
        valid = np.logical_and(valid, eval_mask)
    gt, pred = gt[valid], pred[valid]
    if gt.shape[0] == 0:
        return None
    thresh = np.maximum((gt / pred), (pred / gt))
    a1, a2, a3 = (thresh < 1.25).mean(), (thresh < 1.25 ** 2).mean(), (thresh < 1.25 ** 3).mean()
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    rmse = np.sqrt(((gt - pred) ** 2).mean())
    rmse_log = np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean())
    err = np.log(pred) - np.log(gt)
    silog = np.sqrt(np.mean(err ** 2) - np.mean(err) ** 2) * 100
    if np.isnan(silog):
        silog = 0
    log_10 = (np.abs(np.log10(gt) - np.log10(pred))).mean()
    return dict(abs_rel=abs_rel, sq_rel=sq_rel, rmse=rmse, rmse_log=rmse_log, log10=log_10, silog=silog,
                delta1=a1, delta2=a2, delta3=a3)


def assert_close(got, ref):
    assert set(got) == set(STANDARD_KEYS)
    for k in STANDARD_KEYS:
        assert got[k] == pytest.approx(float(ref[k]), abs=1e-6, rel=1e-6), k


def test_a_hand_computed_case():
    gt = np.full((4, 5), 2.0)
    pred = gt * 1.1
    m = standard_image_metrics(pred, gt, 1e-3, 10.0)
    assert m["abs_rel"] == pytest.approx(0.1) and m["rmse"] == pytest.approx(0.2)
    assert m["sq_rel"] == pytest.approx(0.04 / 2.0) and m["rmse_log"] == pytest.approx(np.log(1.1))
    assert m["log10"] == pytest.approx(np.log10(1.1)) and m["silog"] == pytest.approx(0.0, abs=1e-5)
    assert (m["delta1"], m["delta2"], m["delta3"]) == (1.0, 1.0, 1.0)
    m = standard_image_metrics(gt * 1.3, gt, 1e-3, 10.0)  # 1.25 < 1.3 < 1.5625
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize("name, shape, crop", [("nyu", (480, 640), "eigen"), ("kitti", (352, 1216), "garg"),
                                               ("kitti", (352, 1216), "eigen"), ("nyu", (48, 64), "none")])
def test_matches_the_toolbox_transcription(name, shape, crop):
    preset = datasets.get_preset(name)
    rng = np.random.default_rng(len(name) + shape[0])
    gt = rng.uniform(0.1, preset.max_depth * 1.2, shape)  # some beyond the range: masked out
    gt[rng.random(shape) < 0.6] = 0.0  # sparse, like KITTI's LiDAR
    gt[0, 0] = preset.min_depth  # == min_depth: invalid (strict >), as the toolbox's mask
    pred = np.clip(gt * rng.uniform(0.7, 1.4, shape) + rng.uniform(0, 0.5, shape), preset.min_depth,
                   preset.max_depth)
    box = preset.eval_box(crop, *shape)
    got = standard_image_metrics(pred, gt, preset.min_depth, preset.max_depth, box)
    assert_close(got, toolbox_reference(gt, pred, preset.min_depth, preset.max_depth, box))


def test_crop_boxes_are_the_toolbox_ones():
    assert datasets.NYU.eval_box("eigen", 480, 640) == (45, 471, 41, 601)
    h, w = 352, 1216  # KITTI: the fractions on the KB-cropped frame, truncated as int() does
    assert datasets.KITTI.eval_box("garg", h, w) == (int(0.40810811 * h), int(0.99189189 * h), int(0.03594771 * w),
                                                     int(0.96405229 * w)) == (143, 349, 43, 1172)
    assert datasets.KITTI.eval_box("eigen", h, w) == (int(0.3324324 * h), int(0.91351351 * h), int(0.0359477 * w),
                                                      int(0.96405229 * w))
    assert datasets.KITTI.eval_box("none", h, w) is None


def test_prediction_is_clamped_to_the_range_first():
    gt = np.array([[1.0, 5.0, 9.0]])
    pred = np.array([[0.0, 50.0, 9.0]])  # 0 would be log(0); 50 m beyond NYU's 10 m
    got = standard_image_metrics(pred, gt, 1e-3, 10.0)
    assert_close(got, toolbox_reference(gt, np.clip(pred, 1e-3, 10.0), 1e-3, 10.0))


def test_median_alignment_removes_a_global_scale():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 8.0, (20, 30))
    m = standard_image_metrics(3.0 * gt, gt, 1e-3, 80.0, align="median")
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-9) and m["delta1"] == 1.0
    plain = standard_image_metrics(3.0 * gt, gt, 1e-3, 80.0)
    assert plain["abs_rel"] == pytest.approx(2.0) and plain["silog"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="align"):
        standard_image_metrics(gt, gt, align="mean")


def test_per_image_then_mean_and_images_without_valid_pixels():
    a_gt, a_pred = np.full((2, 2), 1.0), np.full((2, 2), 1.5)  # abs_rel 0.5, 4 pixels
    b_gt, b_pred = np.full((10, 10), 2.0), np.full((10, 10), 2.0)  # abs_rel 0, 100 pixels
    empty = np.zeros((3, 3))
    acc = StandardMetrics(1e-3, 10.0)
    for p, g in ((a_pred, a_gt), (b_pred, b_gt), (empty + 1, empty)):
        acc.update(p[..., None], g[..., None])
    r = acc.result()
    assert r["abs_rel"] == pytest.approx(0.25)  # mean of the images' 0.5 and 0 (pooled would be 2/104)
    assert (r["n_images"], r["n_skipped"]) == (2, 1)
    only_outside = np.zeros((480, 640))
    only_outside[:45] = 3.0  # valid only above the NYU Eigen crop
    assert standard_image_metrics(only_outside, only_outside, 1e-3, 10.0, (45, 471, 41, 601)) is None
    assert np.isnan(StandardMetrics().result()["rmse"])
