"""litedepth_tf.training.losses: hand-computed cases, invariances, empty batches and finite gradients, the
nearest-block map's two paths, and the graph modes the trainer runs it in (unknown shapes, tf.data, a replica
context). Parity with the authors' code on random inputs: test_losses_authors.py."""

import math

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training import losses

K = np.array([[60.0, 60.0, 31.5, 23.5]] * 2, "f4")


def nhwc(x):
    return tf.constant(np.asarray(x, "f4")[..., None])


def gt_case(seed=0, gt_hw=(48, 64), pred_hw=(12, 16), b=2):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(1, 5, (b, *gt_hw)).astype("f4")
    gt[0, :5, :9] = 0
    gt[1, 20:30, 3] = 0
    pred = rng.uniform(1, 5, (b, *pred_hw)).astype("f4")
    return pred, gt


def batch_of(gt, k=K):
    return dict(depth=nhwc(gt), intrinsics=tf.constant(k[: gt.shape[0]]))


# ---- the nearest blocks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("small, big", [((4, 5), (12, 20)), ((4, 5), (11, 13)), ((3, 3), (3, 3)), ((5, 7), (10, 7))])
def test_blocks_up_and_sum_are_transposes_on_both_paths(small, big):
    """up() repeats each value over its block (PyTorch's nearest), sum() adds over blocks: <up(p), x> = <p, sum(x)>;
    the reshape path (integer factors) and the matmul path (the general one) agree wherever both apply."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(2, *small)).astype("f4")
    x = rng.normal(size=(2, *big)).astype("f4")
    blocks = losses._Blocks(small, big)
    ry, rx = losses.nearest_source(small[0], big[0]).numpy(), losses.nearest_source(small[1], big[1]).numpy()
    np.testing.assert_array_equal(blocks.up(tf.constant(p)).numpy(), p[:, ry][:, :, rx])
    np.testing.assert_allclose(np.sum(blocks.up(tf.constant(p)).numpy() * x), np.sum(p * blocks.sum(x).numpy()),
                               rtol=1e-5)
    assert blocks.regular == (big[0] % small[0] == 0 and big[1] % small[1] == 0)
    general = losses._Blocks(small, big)
    general.regular = False
    np.testing.assert_array_equal(general.up(tf.constant(p)).numpy(), blocks.up(tf.constant(p)).numpy())
    np.testing.assert_allclose(general.sum(tf.constant(x)).numpy(), blocks.sum(tf.constant(x)).numpy(), rtol=1e-5,
                               atol=1e-5)


def test_blocks_decide_at_run_time_when_sizes_are_unknown():
    spec = tf.TensorSpec([None, None, None])

    @tf.function(input_signature=[spec, spec])
    def up_and_sum(p, x):
        blocks = losses._Blocks((tf.shape(p)[1], tf.shape(p)[2]), (tf.shape(x)[1], tf.shape(x)[2]))
        return blocks.up(p), blocks.sum(x)

    rng = np.random.default_rng(2)
    for small, big in (((4, 5), (12, 20)), ((4, 5), (11, 13))):
        p, x = rng.normal(size=(1, *small)).astype("f4"), rng.normal(size=(1, *big)).astype("f4")
        up, total = up_and_sum(p, x)
        eager = losses._Blocks(small, big)
        np.testing.assert_array_equal(up.numpy(), eager.up(tf.constant(p)).numpy())
        np.testing.assert_allclose(total.numpy(), eager.sum(tf.constant(x)).numpy(), rtol=1e-5, atol=1e-5)


# ---- si -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0.5, 1.7, 3.0])
def test_si_of_a_scaled_ground_truth_is_sqrt_lambda_log_k(k):
    """pred = k * gt on every valid pixel (the prediction at the ground truth's size): g = log(k gt + eps) -
    log(gt + eps) is nearly constant, so the loss is ~sqrt(0.15) |log k| (the eps makes it not exactly so)."""
    _, gt = gt_case()
    got = float(losses.si_loss(nhwc(np.where(gt > 0, k * gt, 2.0)), nhwc(gt)))
    assert got == pytest.approx(math.sqrt(0.15) * abs(math.log(k)), rel=2e-3)


def test_si_per_image_is_the_mean_over_images_with_valid_pixels():
    pred, gt = gt_case(3, b=3)
    gt[1] = 0  # an image with no valid pixel is left out of the mean, not counted as 0
    gt[2] *= 3.0  # pooled, the log-scale offset between images 0 and 2 adds to the variance
    per = float(losses.si_loss(nhwc(pred), nhwc(gt), per_image=True))
    want = np.mean([float(losses.si_loss(nhwc(pred[i:i + 1]), nhwc(gt[i:i + 1]))) for i in (0, 2)])
    assert per == pytest.approx(want, rel=1e-5)
    assert abs(float(losses.si_loss(nhwc(pred), nhwc(gt))) - per) > 1e-3


def test_si_single_valid_pixel_has_zero_variance():
    gt = np.zeros((1, 8, 8), "f4")
    gt[0, 3, 3] = 2.0
    got = float(losses.si_loss(nhwc(np.full((1, 2, 2), 4.0)), nhwc(gt)))
    assert got == pytest.approx(math.sqrt(0.15) * abs(math.log(4.001) - math.log(2.001)), rel=1e-5)


# ---- gradient loss --------------------------------------------------------------------------------------------
def test_gradient_loss_hand_computed_in_each_mode():
    small = np.array([[1, 2, 0], [2, 4, 6]], "f4")[None]  # one invalid pixel (0, 2)
    pred = np.array([[1, 1, 9], [1, 1, 1]], "f4")[None]
    # x pairs: (1->2): |0 - 1| = 1; (2->0): invalid, |8 - 0| = 8 as a zero target, |8 - (-2)| = 10 unmasked;
    # row 1: |0 - 2| = 2, |0 - 2| = 2. y pairs: |0 - 1| = 1, |0 - 2| = 2, (0->6): invalid, |-8 - 0| = 8 / 14.
    want = {"paper": (1 + 2 + 2) / 3 + (1 + 2) / 2, "authors_code": (1 + 8 + 2 + 2) / 4 + (1 + 2 + 8) / 3,
            "none": (1 + 10 + 2 + 2) / 4 + (1 + 2 + 14) / 3}
    for mode, value in want.items():
        assert float(losses.gradient_loss(nhwc(pred), nhwc(small), mode)) == pytest.approx(value), mode
    with pytest.raises(ValueError, match="mask"):
        losses.gradient_loss(nhwc(pred), nhwc(small), "nan")


# ---- robust ---------------------------------------------------------------------------------------------------
def test_robust_alpha1_is_pseudo_huber_on_the_upsampled_prediction():
    pred = np.array([[2.0, 5.0]], "f4")[None]  # each pixel covers a 2x2 block of the ground truth
    gt = np.array([[2.0, 3.0, 5.0, 0.0], [1.0, 2.0, 9.0, 5.0]], "f4")[None]
    x = np.array([0.0, 1.0, -1.0, 0.0, 0.0, 4.0, 0.0]) / 2.0  # (gt - pred) / c on the 7 valid pixels
    got = float(losses.robust_loss(nhwc(pred), nhwc(gt)))
    assert got == pytest.approx(np.mean(np.sqrt(x ** 2 + 1) - 1), rel=1e-5)


# ---- VNL ------------------------------------------------------------------------------------------------------
def plane_depth(normal, dist, k, h, w):
    """Depth of the plane n . P = dist seen by a pinhole camera k = (fx, fy, u0, v0), [1, h, w]."""
    fx, fy, cx, cy = k
    v, u = np.mgrid[0:h, 0:w].astype("f8")
    ray = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)
    return (dist / (ray @ np.asarray(normal, "f8")))[None].astype("f4")


def test_vnl_on_planes_with_the_authors_camera():
    """A plane predicted as itself costs 0, as a scaled copy ~0 (normals are scale invariant); a tilted plane costs
    |n1 - n2|_1 on every kept triplet. The camera is the authors' (focal scaled to the map, centre w // 2)."""
    cfg = losses.LossConfig()
    k = losses._focal_center(32, 40, cfg, None).numpy()[0]
    gt = plane_depth([0.1, -0.2, 1.0], 3.0, k, 32, 40)
    seed = tf.constant([3, 4], tf.int64)
    assert float(losses.vnl_loss(nhwc(gt), nhwc(gt), seed)) == 0.0
    assert float(losses.vnl_loss(nhwc(2.5 * gt), nhwc(gt), seed)) == pytest.approx(0.0, abs=1e-4)
    tilted = plane_depth([0.5, 0.3, 1.0], 3.0, k, 32, 40)
    n1, n2 = np.array([0.1, -0.2, 1.0]), np.array([0.5, 0.3, 1.0])
    expected = np.abs(n1 / np.linalg.norm(n1) - n2 / np.linalg.norm(n2)).sum()
    assert float(losses.vnl_loss(nhwc(tilted), nhwc(gt), seed)) == pytest.approx(expected, rel=1e-3)


def test_vnl_crop_intrinsics_use_the_batch_camera():
    pred, gt = gt_case(2, gt_hw=(12, 16))
    idx = losses.sample_triplets((12, 16), tf.constant([1, 1], tf.int64))
    crop = losses.LossConfig(vnl_intrinsics="crop")
    a = float(losses.vnl_loss_from_triplets(nhwc(pred), nhwc(gt), idx, crop, tf.constant(K)))
    k2 = K.copy()
    k2[:, 0] *= 3
    b = float(losses.vnl_loss_from_triplets(nhwc(pred), nhwc(gt), idx, crop, tf.constant(k2)))
    authors = float(losses.vnl_loss_from_triplets(nhwc(pred), nhwc(gt), idx))
    assert len({a, b, authors}) == 3


def test_sample_triplets_count_range_and_seed():
    a = losses.sample_triplets((7, 9), tf.constant([1, 2], tf.int64)).numpy()
    b = losses.sample_triplets((7, 9), tf.constant([1, 2], tf.int64)).numpy()
    c = losses.sample_triplets((7, 9), tf.constant([1, 3], tf.int64)).numpy()
    assert a.shape == (int(0.15 * 63), 3) and a.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    many = losses.sample_triplets((7, 9), tf.constant([5, 5], tf.int64), ratio=1.0).numpy()
    assert many.min() >= 0 and many.max() <= 62 and len(np.unique(many)) > 50  # uniform over every pixel


def test_config_rejects_unknown_modes():
    with pytest.raises(ValueError, match="grad_mask"):
        losses.LossConfig(grad_mask="nan")
    with pytest.raises(ValueError, match="vnl_intrinsics"):
        losses.LossConfig(vnl_intrinsics="gt")


# ---- empty batches, gradients, graph modes ------------------------------------------------------------------
def _all(p, b, s, cfg=None):
    return tf.add_n([v for k, v in losses.compute_losses(p, b, s, cfg).items() if k != "n_valid"])


TERM_FNS = {t: (lambda t: lambda p, b, s: losses.compute_losses(p, b, s)[t])(t) for t in losses.TERMS}
TERM_FNS["all"] = _all


def value_and_grad(fn, pred, batch):
    p = tf.Variable(nhwc(pred))
    with tf.GradientTape() as tape:
        value = fn(p, batch, tf.constant([7, 8], tf.int64))
    return float(value), tape.gradient(value, p).numpy()


@pytest.mark.parametrize("name", list(TERM_FNS))
def test_all_invalid_batch_gives_zero_and_zero_gradients(name):
    pred, gt = gt_case()
    value, grad = value_and_grad(TERM_FNS[name], pred, batch_of(np.zeros_like(gt)))
    assert value == 0.0 and np.all(grad == 0)


@pytest.mark.parametrize("name", list(TERM_FNS))
@pytest.mark.parametrize("equal", [False, True])
def test_gradients_finite_with_holes_relu_zeros_and_at_pred_equal_gt(name, equal):
    pred, gt = gt_case(4, gt_hw=(12, 16), pred_hw=(12, 16))
    pred[0, 0, :4] = 0.0  # ReLU zeros
    if equal:
        pred = np.where(gt > 0, gt, 3.0).astype("f4")
    value, grad = value_and_grad(TERM_FNS[name], pred, batch_of(gt))
    assert np.isfinite(value) and np.isfinite(grad).all()
    if equal and name in ("si", "robust", "vnl"):
        assert value == pytest.approx(0.0, abs=1e-3)
    if not equal:
        assert np.abs(grad).sum() > 0


def test_compute_losses_in_tf_function_with_unknown_shapes():
    pred, gt = gt_case(5, gt_hw=(48, 64), pred_hw=(12, 16))
    batch = batch_of(gt)
    spec = {k: tf.TensorSpec([None] * len(v.shape), v.dtype) for k, v in batch.items()}
    fn = tf.function(losses.compute_losses, input_signature=[tf.TensorSpec([None, None, None, 1]), spec,
                                                               tf.TensorSpec([2], tf.int64)])
    seed = tf.constant([1, 2], tf.int64)
    for g, p in ((gt, pred), (gt[:, :47, :61], pred)):  # integer factors, then none
        b = batch_of(np.ascontiguousarray(g))
        got, eager = fn(nhwc(p), b, seed), losses.compute_losses(nhwc(p), b, seed)
        for k in eager:
            assert float(got[k]) == pytest.approx(float(eager[k]), rel=1e-5), k


def test_compute_losses_in_tf_data_map_and_replica_context():
    pred, gt = gt_case(6)
    batch = batch_of(gt)
    seed = tf.constant([1, 2], tf.int64)
    eager = losses.compute_losses(nhwc(pred), batch, seed)
    ds = tf.data.Dataset.from_tensors((nhwc(pred), batch)).map(lambda p, b: losses.compute_losses(p, b, seed))
    mapped = next(iter(ds))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    replica = strategy.run(tf.function(lambda p, b: losses.compute_losses(p, b, seed)), (nhwc(pred), batch))
    for k in eager:
        assert float(mapped[k]) == pytest.approx(float(eager[k]), rel=1e-6)
        assert float(replica[k]) == pytest.approx(float(eager[k]), rel=1e-6)


def test_config_defaults_are_the_authors():
    cfg = losses.LossConfig()
    assert (cfg.si_lambda, cfg.si_eps, cfg.si_per_image, cfg.robust_alpha, cfg.robust_c) == (0.15, 1e-3, False, 1.0,
                                                                                              2.0)
    assert (cfg.grad_mask, cfg.vnl_ratio, cfg.vnl_cos, cfg.vnl_diff, cfg.vnl_delta_z, cfg.vnl_trim) == (
        "paper", 0.15, 0.867, 0.005, 0.1, 0.25)
    assert cfg.vnl_intrinsics == "authors" and cfg.vnl_frame == (480, 640)
