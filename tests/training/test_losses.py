"""litedepth_tf.training.losses against NumPy references written here, on small hand-made cases."""

import math

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training import losses
from litedepth_tf.data.augment import depth_gradients

K = np.array([[5.0, 6.0, 2.5, 1.5], [4.0, 4.5, 3.0, 2.0]], "f4")  # fx, fy, cx, cy of each image (4x6 maps)


def small_case(seed=0, shape=(2, 4, 6, 1)):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1, 5, shape).astype("f4")
    depth[0, 0, :3] = 0
    depth[1, 2, 4] = 0
    depth[1, 3, 0] = 0
    pred = rng.uniform(1, 5, shape).astype("f4")
    return pred, depth, (depth > 0).astype("f4")


def batch_of(depth, intrinsics=K):
    d = tf.constant(depth)
    gx, gy = depth_gradients(d)
    return dict(depth=d, valid=tf.cast(d > 0, tf.float32), grad_x=gx, grad_y=gy, intrinsics=tf.constant(intrinsics))


# ---- NumPy references ----------------------------------------------------------------------------------------
def np_si(pred, depth, valid, lam=0.15):
    m = valid > 0
    g = np.log(pred[m].astype("f8")) - np.log(depth[m].astype("f8"))
    return math.sqrt(np.mean((g - g.mean()) ** 2) + lam * g.mean() ** 2) if g.size else 0.0


def np_grad(pred, gx, gy):
    px = pred[:, :, 1:] - pred[:, :, :-1]
    py = pred[:, 1:] - pred[:, :-1]
    tx, ty = gx[:, :, :-1], gy[:, :-1]
    errs = np.concatenate([np.abs(px - tx)[np.isfinite(tx)], np.abs(py - ty)[np.isfinite(ty)]])
    return float(errs.mean()) if errs.size else 0.0


def np_robust(pred, depth, valid, alpha, c):
    x = (pred - depth)[valid > 0].astype("f8") / c
    if alpha == 2:
        f = 0.5 * x ** 2
    elif alpha == 0:
        f = np.log(0.5 * x ** 2 + 1)
    else:
        b = abs(alpha - 2)
        f = b / alpha * ((x ** 2 / b + 1) ** (alpha / 2) - 1)
    return float(f.mean()) if f.size else 0.0


def np_vnl(pred, depth, valid, intrinsics, idx, cos_t=0.867, diff=0.005, trim=0.25):
    b, h, w, _ = depth.shape
    kept = []
    for i in range(b):
        fx, fy, cx, cy = intrinsics[i].astype("f8")

        def points(d, tri):
            u, v = tri % w, tri // w
            z = d[i, v, u, 0].astype("f8")
            return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], -1)  # [3 points, xyz]

        def normal(p):
            n = np.cross(p[1] - p[0], p[2] - p[0])
            norm = np.linalg.norm(n)
            return n / norm if norm > 0 else n

        for tri in idx[i]:
            if not all(valid[i, t // w, t % w, 0] > 0 for t in tri):
                continue
            p = points(depth, tri)
            edges = [p[1] - p[0], p[2] - p[0], p[2] - p[1]]
            cosines = [e1 @ e2 / (np.linalg.norm(e1) * np.linalg.norm(e2) + 1e-8)
                       for e1, e2 in ((edges[0], edges[1]), (edges[0], edges[2]), (edges[1], edges[2]))]
            collinear = any(abs(cv) > cos_t for cv in cosines)
            near = any(all(abs(e[a]) < diff for a in range(3)) for e in edges)
            if collinear or near:
                continue
            kept.append(np.abs(normal(p) - normal(points(pred, tri))).sum())
    if not kept:
        return 0.0
    kept = np.sort(kept)[int(len(kept) * trim):]
    return float(kept.mean()) if kept.size else 0.0


def plane_depth(normal, dist, intrinsics, h, w):
    """Depth of the plane n . P = dist seen by a pinhole camera, [1, h, w, 1]."""
    fx, fy, cx, cy = intrinsics
    v, u = np.mgrid[0:h, 0:w].astype("f8")
    ray = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1)
    return (dist / (ray @ np.asarray(normal, "f8")))[None, ..., None].astype("f4")


# ---- si -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.15, 0.5])
def test_si_matches_numpy(lam):
    pred, depth, valid = small_case()
    got = float(losses.si_log_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid), lam))
    assert got == pytest.approx(np_si(pred, depth, valid, lam), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("k", [0.5, 1.7, 3.0])
def test_si_scale_invariance(k):
    _, depth, valid = small_case()
    pred = np.where(valid > 0, k * depth, 2.0).astype("f4")
    got = float(losses.si_log_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid)))
    assert got == pytest.approx(math.sqrt(0.15) * abs(math.log(k)), rel=1e-5)


@pytest.mark.parametrize("lam", [0.15, 0.5])
def test_si_per_image_is_the_mean_over_images_with_valid_pixels(lam):
    pred, depth, valid = small_case(5, (3, 4, 6, 1))
    depth[1], valid[1] = 0.0, 0.0  # an image with no valid pixel is left out of the mean, not counted as 0
    got = float(losses.si_log_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid), lam, per_image=True))
    want = np.mean([np_si(pred[i:i + 1], depth[i:i + 1], valid[i:i + 1], lam) for i in (0, 2)])
    assert got == pytest.approx(want, rel=1e-5)
    pooled = float(losses.si_log_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid), lam))
    assert pooled == pytest.approx(np_si(pred, depth, valid, lam), rel=1e-5) and abs(pooled - got) > 1e-3


def test_si_per_image_ignores_a_scale_per_image_up_to_lambda():
    """Each image scaled by its own k: per image the loss is sqrt(lam)|log k| averaged; pooled it also sees the
    spread of the log k between images."""
    _, depth, valid = small_case(6, (2, 4, 6, 1))
    ks = np.array([0.5, 2.0], "f4").reshape(2, 1, 1, 1)
    pred = np.where(valid > 0, ks * depth, 1.0).astype("f4")
    per = float(losses.si_log_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid), per_image=True))
    assert per == pytest.approx(math.sqrt(0.15) * math.log(2.0), rel=1e-5)
    pooled = float(losses.si_log_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid)))
    assert pooled == pytest.approx(np_si(pred, depth, valid), rel=1e-5) and pooled > per + 0.1


def test_si_per_image_empty_batch_and_gradients_finite():
    pred, depth, _ = small_case(4)
    for d in (np.zeros_like(depth), depth, np.where(depth > 0, pred, 0.0).astype("f4")):
        p = tf.Variable(pred)
        with tf.GradientTape() as tape:
            value = losses.si_log_loss(p, tf.constant(d), tf.constant((d > 0).astype("f4")), per_image=True)
        grad = tape.gradient(value, p).numpy()
        assert np.isfinite(float(value)) and np.isfinite(grad).all()
        if not d.any():
            assert float(value) == 0.0 and not grad.any()


def test_pred_is_resized_to_the_depth_resolution():
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 5, (2, 240, 384, 1)).astype("f4")
    depth[:, :20] = 0
    valid = (depth > 0).astype("f4")
    small = rng.uniform(1, 5, (2, 60, 96, 1)).astype("f4")
    up = tf.image.resize(small, (240, 384), method="bilinear").numpy()
    got = float(losses.si_log_loss(tf.constant(small), tf.constant(depth), tf.constant(valid)))
    assert got == pytest.approx(np_si(up, depth, valid), rel=1e-5)
    const = float(losses.si_log_loss(tf.fill([2, 60, 96, 1], 2.0), tf.ones([2, 240, 384, 1]), tf.ones([2, 240, 384, 1])))
    assert const == pytest.approx(math.sqrt(0.15) * math.log(2.0), rel=1e-5)
    batch = batch_of(depth, np.tile(np.array([[259.4, 259.7, 192.0, 120.0]], "f4"), (2, 1)))
    out = losses.compute_losses(tf.constant(small), batch, tf.constant([0, 1], tf.int64))
    assert float(out["robust"]) == pytest.approx(np_robust(up, depth, valid, 1.0, 2.0), rel=1e-5)
    assert float(out["grad"]) == pytest.approx(np_grad(up, batch["grad_x"].numpy(), batch["grad_y"].numpy()), rel=1e-5)
    assert float(out["n_valid"]) == valid.sum()


# ---- gradient loss --------------------------------------------------------------------------------------------
def test_grad_matches_numpy_and_ignores_nan_pairs():
    pred, depth, _ = small_case()
    b = batch_of(depth)
    gx, gy = b["grad_x"].numpy(), b["grad_y"].numpy()
    assert np.isnan(gx).sum() > 2 * 4 and np.isnan(gy).sum() > 2 * 6  # last column/row plus invalid pairs
    got = float(losses.gradient_loss(tf.constant(pred), b["grad_x"], b["grad_y"]))
    assert got == pytest.approx(np_grad(pred, gx, gy), rel=1e-5)


def test_grad_hand_computed():
    depth = np.array([[1, 2, 0], [2, 4, 6]], "f4")[None, ..., None]  # one invalid pixel (0, 2)
    pred = np.array([[1, 1, 9], [1, 1, 1]], "f4")[None, ..., None]
    b = batch_of(depth, K[:1])
    # x pairs: row 0 (1->2: |0-1| = 1; 2->0 invalid), row 1 (|0-2| = 2, |0-2| = 2); y pairs: |0-1| = 1, |0-2| = 2
    got = float(losses.gradient_loss(tf.constant(pred), b["grad_x"], b["grad_y"]))
    assert got == pytest.approx((1 + 2 + 2 + 1 + 2) / 5)


# ---- robust ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.0, -2.0, 4.0, 0.5])
@pytest.mark.parametrize("c", [2.0, 0.3])
def test_robust_matches_formula(alpha, c):
    pred, depth, valid = small_case(1)
    got = float(losses.robust_loss(tf.constant(pred), tf.constant(depth), tf.constant(valid), alpha, c))
    assert got == pytest.approx(np_robust(pred, depth, valid, alpha, c), rel=1e-5, abs=1e-7)


def test_robust_alpha1_is_pseudo_huber():
    x = np.array([0.0, 1.0, -3.0], "f4").reshape(1, 1, 3, 1)
    gt = np.full_like(x, 5.0)
    got = float(losses.robust_loss(tf.constant(gt + x), tf.constant(gt), tf.ones_like(gt), 1.0, 2.0))
    assert got == pytest.approx(np.mean(np.sqrt((x / 2.0) ** 2 + 1) - 1), rel=1e-5)


# ---- VNL ------------------------------------------------------------------------------------------------------
def test_vnl_matches_numpy_on_explicit_triplets():
    pred, depth, valid = small_case(2)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 24, (2, 300, 3)).astype("i4")  # includes invalid pixels and repeated points
    idx[0, :5] = [[0, 1, 2], [6, 7, 8], [12, 13, 14], [6, 12, 18], [7, 7, 7]]  # invalid, collinear, degenerate
    got = losses.vnl_loss_from_triplets(tf.constant(pred), tf.constant(depth), tf.constant(valid), tf.constant(K),
                                        tf.constant(idx))
    ref = np_vnl(pred, depth, valid, K, idx)
    assert ref > 0 and float(got) == pytest.approx(ref, rel=1e-5)


def test_vnl_filters_collinear_and_close_triplets():
    wall = np.full((2, 4, 6, 1), 2.0, "f4")  # fronto-parallel plane: pixel spacing 2 / fx = 0.4 m in X
    pred = wall * np.random.default_rng(0).uniform(0.5, 2, wall.shape).astype("f4")

    def vnl(depth, idx):
        args = [tf.constant(pred), tf.constant(depth), tf.ones_like(depth), tf.constant(K), tf.constant(idx, tf.int32)]
        return float(losses.vnl_loss_from_triplets(*args))

    row_and_column = np.array([[[6, 7, 8], [1, 7, 13]]] * 2)  # collinear in 3-D on the wall
    assert vnl(wall, row_and_column) == 0.0
    repeated = np.array([[[6, 6, 13], [7, 13, 7]]] * 2)  # two identical points
    assert vnl(wall, repeated) == 0.0
    assert vnl(np.full_like(wall, 1e-3), np.array([[[6, 7, 13]]] * 2)) == 0.0  # all three within 0.2 mm
    right_angle = np.array([[[6, 7, 13]]] * 2)  # spread 0.4 m: kept (the reference's any/any/any rule drops it)
    assert vnl(wall, right_angle) > 0
    assert vnl(wall, right_angle) == pytest.approx(np_vnl(pred, wall, np.ones_like(wall), K, right_angle), rel=1e-5)


def test_vnl_planar_scene():
    k = np.array([[60.0, 60.0, 31.5, 23.5]], "f4")
    gt = plane_depth([0.1, -0.2, 1.0], 3.0, k[0], 48, 64)
    gt[0, :5, :7] = 0
    valid = (gt > 0).astype("f4")
    seed = tf.constant([3, 4], tf.int64)
    same = losses.vnl_loss(tf.constant(gt), tf.constant(gt), tf.constant(valid), tf.constant(k), seed, 500)
    assert float(same) == 0.0
    tilted = plane_depth([0.5, 0.3, 1.0], 3.0, k[0], 48, 64)
    got = losses.vnl_loss(tf.constant(tilted), tf.constant(gt), tf.constant(valid), tf.constant(k), seed, 500)
    n1, n2 = np.array([0.1, -0.2, 1.0]), np.array([0.5, 0.3, 1.0])
    expected = np.abs(n1 / np.linalg.norm(n1) - n2 / np.linalg.norm(n2)).sum()  # every triplet: the same normals
    assert float(got) == pytest.approx(expected, rel=1e-3)
    scaled = losses.vnl_loss(tf.constant(2.5 * gt), tf.constant(gt), tf.constant(valid), tf.constant(k), seed, 500)
    assert float(scaled) == pytest.approx(0.0, abs=1e-4)  # normals are scale invariant


def test_vnl_uses_the_batch_intrinsics():
    pred, depth, valid = small_case(2)
    idx = np.random.default_rng(1).integers(0, 24, (2, 200, 3)).astype("i4")
    args = [tf.constant(pred), tf.constant(depth), tf.constant(valid)]
    a = losses.vnl_loss_from_triplets(*args, tf.constant(K), tf.constant(idx))
    k2 = K.copy()
    k2[:, 0] *= 3
    b = losses.vnl_loss_from_triplets(*args, tf.constant(k2), tf.constant(idx))
    assert float(b) == pytest.approx(np_vnl(pred, depth, valid, k2, idx), rel=1e-5) and float(a) != float(b)


def test_sampler_valid_only_deterministic_and_seeded():
    valid = np.zeros((3, 7, 9, 1), "f4")
    valid[0, 2:5, 3:8] = 1
    valid[1, 6, 8] = 1  # a single valid pixel
    # image 2: none valid
    v = tf.constant(valid)
    a = losses.sample_triplets(v, 400, tf.constant([1, 2], tf.int64)).numpy()
    b = losses.sample_triplets(v, 400, tf.constant([1, 2], tf.int64)).numpy()
    c = losses.sample_triplets(v, 400, tf.constant([1, 3], tf.int64)).numpy()
    assert a.shape == (3, 400, 3) and a.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], c[0])
    flat = valid.reshape(3, -1)
    assert flat[0][a[0]].all() and set(np.unique(a[0])) == set(np.flatnonzero(flat[0]))  # every valid pixel hit
    assert (a[1] == 6 * 9 + 8).all()
    assert ((a[2] >= 0) & (a[2] < 63)).all()
    counts = np.bincount(a[0].ravel(), minlength=63)[np.flatnonzero(flat[0])]
    assert counts.min() > 0.4 * counts.mean()  # roughly uniform: 1200 draws over 15 pixels


# ---- empty batches, gradients, graph modes ------------------------------------------------------------------
LOSS_FNS = {
    "si": lambda p, b, s: losses.si_log_loss(p, b["depth"], b["valid"]),
    "grad": lambda p, b, s: losses.gradient_loss(p, b["grad_x"], b["grad_y"]),
    "vnl": lambda p, b, s: losses.vnl_loss(p, b["depth"], b["valid"], b["intrinsics"], s, 100),
    "robust": lambda p, b, s: losses.robust_loss(p, b["depth"], b["valid"]),
    "all": lambda p, b, s: tf.add_n([v for k, v in losses.compute_losses(p, b, s).items() if k != "n_valid"]),
}


def value_and_grad(fn, pred, batch):
    p = tf.Variable(pred)
    with tf.GradientTape() as tape:
        value = fn(p, batch, tf.constant([7, 8], tf.int64))
    return float(value), tape.gradient(value, p).numpy()


@pytest.mark.parametrize("name", list(LOSS_FNS))
def test_all_invalid_batch_gives_zero_and_zero_gradients(name):
    pred, _, _ = small_case()
    value, grad = value_and_grad(LOSS_FNS[name], pred, batch_of(np.zeros((2, 4, 6, 1), "f4")))
    assert value == 0.0 and np.all(grad == 0)


def test_compute_losses_on_empty_batch():
    out = losses.compute_losses(tf.ones([2, 1, 2, 1]), batch_of(np.zeros((2, 4, 8, 1), "f4")),
                                tf.constant([0, 0], tf.int64))
    assert set(out) == {"si", "grad", "vnl", "robust", "n_valid"}
    assert all(float(v) == 0.0 and v.dtype == tf.float32 and v.shape == () for v in out.values())


@pytest.mark.parametrize("name", list(LOSS_FNS))
@pytest.mark.parametrize("equal", [False, True])
def test_gradients_finite_with_invalid_pixels_and_at_pred_equal_gt(name, equal):
    pred, depth, _ = small_case(4)
    if equal:
        pred = np.where(depth > 0, depth, 3.0).astype("f4")
    value, grad = value_and_grad(LOSS_FNS[name], pred, batch_of(depth))
    assert np.isfinite(value) and np.isfinite(grad).all()
    if equal and name not in ("grad", "all"):  # the gradient loss still sees the invalid pixels' neighbours
        assert value == pytest.approx(0.0, abs=1e-6)
    if not equal:
        assert np.abs(grad).sum() > 0


def test_compute_losses_in_tf_function_with_unknown_shapes():
    pred, depth, _ = small_case()
    batch = batch_of(depth)
    spec = {k: tf.TensorSpec([None] * len(v.shape), v.dtype) for k, v in batch.items()}
    fn = tf.function(losses.compute_losses, input_signature=[tf.TensorSpec([None, None, None, 1]), spec,
                                                               tf.TensorSpec([2], tf.int64)])
    seed = tf.constant([1, 2], tf.int64)
    got = fn(tf.constant(pred), batch, seed)
    eager = losses.compute_losses(tf.constant(pred), batch, seed)
    for k in eager:
        assert float(got[k]) == pytest.approx(float(eager[k]), rel=1e-6)


def test_compute_losses_in_tf_data_map_and_replica_context():
    pred, depth, _ = small_case()
    batch = batch_of(depth)
    seed = tf.constant([1, 2], tf.int64)
    eager = losses.compute_losses(tf.constant(pred), batch, seed)
    ds = tf.data.Dataset.from_tensors((tf.constant(pred), batch)).map(
        lambda p, b: losses.compute_losses(p, b, seed))
    mapped = next(iter(ds))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    replica = strategy.run(tf.function(lambda p, b: losses.compute_losses(p, b, seed)), (tf.constant(pred), batch))
    for k in eager:
        assert float(mapped[k]) == pytest.approx(float(eager[k]), rel=1e-6)
        assert float(replica[k]) == pytest.approx(float(eager[k]), rel=1e-6)


def test_config_defaults():
    cfg = losses.LossConfig()
    assert (cfg.si_lambda, cfg.robust_alpha, cfg.robust_c, cfg.vnl_trim) == (0.15, 1.0, 2.0, 0.25)
    assert cfg.vnl_samples > 0 and cfg.vnl_cos == 0.867
