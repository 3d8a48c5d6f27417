"""The training losses, the re-weighting and the distillation loss against the NumPy transcription of the authors'
code (tests/training/authors_reference.py) on random inputs with holes, at the sizes the authors use (the three
R-crops of a 480x640 frame with their 1/15 x 1/16 predictions) and at sizes without integer factors: every value
to 1e-5 relative, and the gradients of the smooth terms against central differences of the transcription. Each
test fails when a convention changes (the resize modes, the unbiased variance, the eps, the per-direction
normalisation, the prediction-side VNL filter, the weights before the re-weighting, the bilinear distillation
mask)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training import distill, losses, reweight
from tests.training import authors_reference as ref

# (ground truth, prediction): the R-crops 480x640, 360x512, 240x384 seen at 128x160, 96x128, 64x96 (stride 4),
# the demo's depth_stride=4 targets (120x160), and KITTI's 352x1216 at 96x320 (no integer factor)
SIZES = [((480, 640), (32, 40)), ((360, 512), (24, 32)), ((240, 384), (16, 24)), ((120, 160), (32, 40)),
         ((352, 1216), (24, 80))]


def case(gt_hw, pred_hw, seed=0, b=2, hole=0.2):
    """A batch with random holes, a rectangular hole and ReLU zeros in the prediction."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 12.0, (b, *gt_hw)).astype(np.float32)
    gt[rng.uniform(size=gt.shape) < hole] = 0
    gt[0, : gt_hw[0] // 3, : gt_hw[1] // 4] = 0
    pred = rng.uniform(0.2, 12.0, (b, *pred_hw)).astype(np.float32)
    pred[rng.uniform(size=pred.shape) < 0.05] = 0
    return pred, gt


def nhwc(x):
    return tf.constant(x[..., None])


def rel(got, want):
    return abs(float(got) - want) / max(abs(want), 1e-12)


@pytest.mark.parametrize("gt_hw, pred_hw", SIZES)
def test_the_resizes_are_pytorchs(gt_hw, pred_hw):
    pred, gt = case(gt_hw, pred_hw)
    up, down = ref.head_inputs(pred, gt)
    np.testing.assert_array_equal(losses._Blocks(pred_hw, gt_hw).up(tf.constant(pred)).numpy(), up)
    np.testing.assert_allclose(losses.downsample_gt(nhwc(gt), pred_hw).numpy()[..., 0], down, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(losses.nearest_source(pred_hw[0], gt_hw[0]).numpy(),
                                  ref.nearest_index(pred_hw[0], gt_hw[0]))


@pytest.mark.parametrize("gt_hw, pred_hw", SIZES)
def test_si_and_robust_equal_the_authors(gt_hw, pred_hw):
    pred, gt = case(gt_hw, pred_hw, seed=1)
    up, _ = ref.head_inputs(pred, gt)
    assert rel(losses.si_loss(nhwc(pred), nhwc(gt)), ref.sigloss(up, gt)) < 1e-5
    assert rel(losses.robust_loss(nhwc(pred), nhwc(gt)), ref.robust(up, gt)) < 1e-5
    for alpha, c in ((4.0, 1.0), (0.5, 3.0)):  # the code's formula (alpha = 2 is its singular limit)
        assert rel(losses.robust_loss(nhwc(pred), nhwc(gt), alpha, c), ref.robust(up, gt, alpha, c)) < 1e-5


def test_si_uses_the_unbiased_variance_and_eps():
    """On a tiny map the unbiased variance and the eps are visible: the population variance or log(x) alone
    would be off by far more than the tolerance."""
    pred, gt = case((6, 8), (3, 4), seed=2)
    up, _ = ref.head_inputs(pred, gt)
    got = float(losses.si_loss(nhwc(pred), nhwc(gt)))
    assert rel(got, ref.sigloss(up, gt)) < 1e-5
    valid = gt > 0
    g = np.log(up[valid].astype(np.float64) + 1e-3) - np.log(gt[valid] + 1e-3)
    assert rel(got, float(np.sqrt(np.var(g) + 0.15 * g.mean() ** 2))) > 1e-3  # the population variance


@pytest.mark.parametrize("mode", losses.GRAD_MASKS)
@pytest.mark.parametrize("gt_hw, pred_hw", SIZES[:3] + SIZES[4:])
def test_gradient_loss_equals_the_authors(mode, gt_hw, pred_hw):
    pred, gt = case(gt_hw, pred_hw, seed=3, hole=0.5)  # many holes survive the bilinear downsampling
    _, down = ref.head_inputs(pred, gt)
    small = losses.downsample_gt(nhwc(gt), pred_hw)
    assert rel(losses.gradient_loss(nhwc(pred), small, mode), ref.grad_loss(pred, down, mode)) < 1e-5
    if mode == "paper":  # the three conventions differ on this batch
        values = {m: ref.grad_loss(pred, down, m) for m in losses.GRAD_MASKS}
        assert len({round(v, 4) for v in values.values()}) == 3


@pytest.mark.parametrize("gt_hw, pred_hw", SIZES)
def test_vnl_equals_the_authors_on_the_same_triplets(gt_hw, pred_hw):
    pred, gt = case(gt_hw, pred_hw, seed=4)
    _, down = ref.head_inputs(pred, gt)
    idx = losses.sample_triplets(pred_hw, tf.constant([3, 4], tf.int64)).numpy()
    assert idx.shape == (int(0.15 * pred_hw[0] * pred_hw[1]), 3)
    assert idx.min() >= 0 and idx.max() < pred_hw[0] * pred_hw[1]
    got = losses.vnl_loss_from_triplets(nhwc(pred), losses.downsample_gt(nhwc(gt), pred_hw), tf.constant(idx))
    want = ref.vnl(pred, down, idx)
    assert want > 0.05 and rel(got, want) < 1e-5


def test_vnl_filters_on_the_prediction_not_the_ground_truth():
    """A prediction with a plane nearer than delta_z: the authors drop those triplets (filter on the prediction's
    points); where only the ground truth is near, they stay."""
    pred, gt = case((480, 640), (32, 40), seed=5, hole=0.0)
    idx = losses.sample_triplets((32, 40), tf.constant([1, 2], tf.int64)).numpy()
    near_pred = pred.copy()
    near_pred[:, :16] = 0.05  # the top half of the prediction in front of delta_z = 0.1 m
    gt_near = gt.copy()
    gt_near[:, :240] = 0.05
    small = losses.downsample_gt(nhwc(gt), (32, 40))
    for p, g in ((near_pred, gt), (pred, gt_near)):
        _, down = ref.head_inputs(p, g)
        got = losses.vnl_loss_from_triplets(nhwc(p), losses.downsample_gt(nhwc(g), (32, 40)), tf.constant(idx))
        assert rel(got, ref.vnl(p, down, idx)) < 1e-5
    pts = losses._points(tf.constant(near_pred), tf.constant(idx), losses._focal_center(32, 40, losses.LossConfig(),
                                                                                          None))
    keep = losses._keep(pts, losses.LossConfig()).numpy()
    top = (idx // 40 < 16).any(axis=1)
    assert not keep[:, top].any() and keep[:, ~top].any()
    assert float(losses.vnl_loss_from_triplets(nhwc(pred), small, tf.constant(idx))) > 0


def test_vnl_keeps_triplets_on_invalid_ground_truth_with_zeroed_normals():
    """Every ground-truth pixel invalid: the authors' normals are NaN there and zeroed on both sides, so each kept
    triplet costs 0 (the pool is not empty: the filter looks at the prediction)."""
    pred, gt = case((240, 384), (16, 24), seed=6)
    idx = losses.sample_triplets((16, 24), tf.constant([0, 7], tf.int64))
    empty = np.zeros_like(gt)
    assert ref.vnl(pred, ref.head_inputs(pred, empty)[1], idx.numpy()) == 0.0
    assert float(losses.vnl_loss_from_triplets(nhwc(pred), nhwc(np.zeros((2, 16, 24), np.float32)), idx)) == 0.0


def test_compute_losses_equals_the_authors_chain():
    """compute_losses on a batch (prediction at stride 4, ground truth at the crop's resolution) = the authors'
    losses() on the same tensors, the VNL on the triplets its seed draws."""
    pred, gt = case((360, 512), (24, 32), seed=7)
    seed = tf.constant([5, 9], tf.int64)
    batch = dict(depth=nhwc(gt), intrinsics=tf.constant([[518.86, 519.47, 256.0, 180.0]] * 2))
    out = losses.compute_losses(nhwc(pred), batch, seed)
    up, down = ref.head_inputs(pred, gt)
    idx = losses.sample_triplets((24, 32), seed).numpy()
    want = dict(si=ref.sigloss(up, gt), grad=ref.grad_loss(pred, down, "paper"), vnl=ref.vnl(pred, down, idx),
                robust=ref.robust(up, gt))
    for k, v in want.items():
        assert rel(out[k], v) < 1e-5, k
    assert float(out["n_valid"]) == float((gt > 0).sum())
    cfg = losses.LossConfig(grad_mask="authors_code")
    assert rel(losses.compute_losses(nhwc(pred), batch, seed, cfg)["grad"], ref.grad_loss(pred, down)) < 1e-5


def _central_difference(fn, x, positions, eps=1e-3):
    out = []
    for pos in positions:
        hi, lo = x.copy(), x.copy()
        hi[pos] += eps
        lo[pos] -= eps
        out.append((fn(hi) - fn(lo)) / (2 * eps))
    return np.array(out)


@pytest.mark.parametrize("term", ["si", "robust", "grad"])
def test_gradients_equal_central_differences_of_the_authors(term):
    pred, gt = case((240, 384), (16, 24), seed=8)
    pred = np.maximum(pred, 0.5)  # away from the ReLU's zeros
    down = ref.head_inputs(pred, gt)[1]
    reference = {"si": lambda p: ref.sigloss(ref.head_inputs(p, gt)[0], gt),
                 "robust": lambda p: ref.robust(ref.head_inputs(p, gt)[0], gt),
                 "grad": lambda p: ref.grad_loss(p, down, "paper")}[term]
    ours = {"si": lambda p: losses.si_loss(p, nhwc(gt)), "robust": lambda p: losses.robust_loss(p, nhwc(gt)),
            "grad": lambda p: losses.gradient_loss(p, nhwc(down), "paper")}[term]
    x = tf.Variable(pred[..., None])
    with tf.GradientTape() as tape:
        value = ours(x)
    grad = tape.gradient(value, x).numpy()[..., 0]
    rng = np.random.default_rng(0)
    positions = [tuple(int(rng.integers(0, n)) for n in pred.shape) for _ in range(12)]
    want = _central_difference(lambda p: reference(p.astype(np.float64)), pred.astype(np.float64), positions)
    np.testing.assert_allclose([grad[p] for p in positions], want, rtol=2e-3, atol=1e-6)


def test_reweighting_applies_the_loss_weights_first():
    terms = {"si": 0.7, "grad": 1.9, "vnl": 0.4, "robust": 2.3}
    layer = reweight.make_weighting("dynamic")
    sigmas = [0.8, 1.3, 0.6, 1.7]
    for var, s in zip(layer.sigmas, sigmas):
        var.assign(s)
    weighted = [w * terms[t] for t, w in zip(reweight.TERMS, reweight.LOSS_WEIGHTS)]
    assert rel(layer({k: tf.constant(v) for k, v in terms.items()}), ref.auto_reweight(weighted, sigmas)) < 1e-6
    raw = [terms[t] for t in reweight.TERMS]
    assert rel(layer({k: tf.constant(v) for k, v in terms.items()}), ref.auto_reweight(raw, sigmas)) > 1e-2
    fixed = reweight.make_weighting("fixed", weights=(1, 0.25, 2.5, 0.6))
    assert rel(fixed({k: tf.constant(v) for k, v in terms.items()}),
               sum(w * terms[t] for t, w in zip(reweight.TERMS, (1, 0.25, 2.5, 0.6)))) < 1e-6


@pytest.mark.parametrize("level_hw", [(32, 40), (16, 20), (8, 10)])
def test_distillation_loss_and_its_mask_equal_the_authors(level_hw):
    """The structure loss of one level with the mask from the full-resolution ground truth, bilinearly resized
    with align_corners=True (DistillWrapper), against the transcription; a nearest mask gives another value."""
    rng = np.random.default_rng(9)
    gt = rng.uniform(0.5, 10, (2, 480, 640)).astype(np.float32)
    gt[rng.uniform(size=gt.shape) < 0.2] = 0
    gt[1, :200, :300] = 0
    fs = rng.normal(size=(2, *level_hw, 8)).astype(np.float32)
    ft = rng.normal(size=(2, *level_hw, 24)).astype(np.float32)
    valid = nhwc((gt > 0).astype(np.float32))
    got = float(distill.structure_affinity_loss(fs, ft, valid))
    want = ref.distill_similarity(fs, ft, gt)
    assert rel(got, want) < 1e-5
    mask = distill.resize_mask(valid, level_hw).numpy()[..., 0]
    np.testing.assert_array_equal(mask > 0, ref.interpolate_bilinear_ac(gt, level_hw) > 0)
    nearest = float(distill.structure_affinity_loss(fs, ft, valid, mask_mode="nearest"))
    assert rel(nearest, want) > 1e-4
