"""The matmul resize and the fused loss path of litedepth_tf.training.losses against the implementation they
replaced (kept below verbatim as the reference: ``tf.image.resize`` bilinear, then every loss on the resized map
with slices for the forward differences), on random inputs at each R-crop size and depth stride: loss values and
gradients with respect to the prediction agree to 1e-5."""

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.data.augment import CROP_SIZES, depth_gradients, image_size_for_crop
from litedepth_tf.training import losses

B = 2


# ---- the reference: the implementation before the matmul resize --------------------------------------------
def ref_resize_to(pred, depth):
    pred = tf.cast(pred, tf.float32)
    if pred.shape[1:3].is_fully_defined() and pred.shape[1:3] == depth.shape[1:3]:
        return pred
    return tf.image.resize(pred, tf.shape(depth)[1:3], method="bilinear")


def ref_si(pred, depth, valid, lam=0.15, per_image=False):
    depth = tf.cast(depth, tf.float32)
    pred, mask = ref_resize_to(pred, depth), valid > 0.5
    g = tf.where(mask, tf.math.log(tf.where(mask, pred, 1.0)) - tf.math.log(tf.where(mask, depth, 1.0)), 0.0)
    axis = [1, 2, 3] if per_image else None
    count = tf.reduce_sum(tf.cast(mask, tf.float32), axis=axis, keepdims=True)
    mean = tf.reduce_sum(g, axis=axis, keepdims=True) / tf.maximum(count, 1.0)
    var = tf.reduce_sum(tf.where(mask, tf.square(g - mean), 0.0), axis=axis, keepdims=True) / tf.maximum(count, 1.0)
    has = tf.cast(count > 0, tf.float32)
    d = var + lam * tf.square(mean)
    root = tf.where(d > 0, tf.sqrt(tf.where(d > 0, d, 1.0)), 0.0)
    return tf.reduce_sum(root * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def ref_grad(pred, grad_x, grad_y):
    pred = ref_resize_to(pred, grad_x)
    px = pred[:, :, 1:, :] - pred[:, :, :-1, :]
    py = pred[:, 1:, :, :] - pred[:, :-1, :, :]
    tx, ty = grad_x[:, :, :-1, :], grad_y[:, :-1, :, :]
    mx, my = tf.math.is_finite(tx), tf.math.is_finite(ty)
    ex = tf.where(mx, tf.abs(px - tf.where(mx, tx, 0.0)), 0.0)
    ey = tf.where(my, tf.abs(py - tf.where(my, ty, 0.0)), 0.0)
    n = tf.reduce_sum(tf.cast(mx, tf.float32)) + tf.reduce_sum(tf.cast(my, tf.float32))
    return (tf.reduce_sum(ex) + tf.reduce_sum(ey)) / tf.maximum(n, 1.0)


def ref_robust(pred, depth, valid, alpha=1.0, c=2.0):
    pred, mask = ref_resize_to(pred, depth), valid > 0.5
    z = tf.square(tf.where(mask, pred - tf.where(mask, depth, 0.0), 0.0) / c)
    b = abs(alpha - 2.0)
    f = b / alpha * (tf.pow(z / b + 1.0, alpha / 2.0) - 1.0)
    return tf.reduce_sum(tf.where(mask, f, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(mask, tf.float32)), 1.0)


def ref_compute(pred, batch, seed, cfg):
    depth, valid = batch["depth"], batch["valid"]
    pred = ref_resize_to(pred, depth)
    return {
        "si": ref_si(pred, depth, valid, cfg.si_lambda, cfg.si_per_image),
        "grad": ref_grad(pred, batch["grad_x"], batch["grad_y"]),
        "vnl": losses.vnl_loss_from_triplets(pred, depth, valid, batch["intrinsics"],
                                             losses.sample_triplets(valid, cfg.vnl_samples, seed)),
        "robust": ref_robust(pred, depth, valid, cfg.robust_alpha, cfg.robust_c),
    }


# ---- cases ---------------------------------------------------------------------------------------------------
def case(crop, stride, seed=0):
    """A prediction at the network's output size of `crop` (input / 4) and targets at the crop / stride."""
    ih, iw = image_size_for_crop(*crop)
    h, w = -(-crop[0] // stride), -(-crop[1] // stride)
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0.5, 20.0, (B, ih // 4, iw // 4, 1)).astype("f4")
    yy, xx = np.mgrid[0:h, 0:w]
    depth = (2.0 + 8.0 * (yy / h) + 3.0 * np.sin(xx / 7.0))[None, :, :, None] * rng.uniform(0.8, 1.2, (B, 1, 1, 1))
    depth = depth.astype("f4") * (rng.uniform(size=(B, h, w, 1)) > 0.2)  # ~20 % invalid pixels
    d = tf.constant(depth)
    gx, gy = depth_gradients(d)
    k = np.tile(np.array([[518.9 / stride, 519.5 / stride, w / 2, h / 2]], "f4"), (B, 1))
    return tf.constant(pred), dict(depth=d, valid=tf.cast(d > 0, tf.float32), grad_x=gx, grad_y=gy,
                                   intrinsics=tf.constant(k))


def values_and_grads(fn, pred, *args):
    p = tf.Variable(pred)
    with tf.GradientTape(persistent=True) as tape:
        out = fn(p, *args)
    out = out if isinstance(out, dict) else {"loss": out}
    out = {k: v for k, v in out.items() if k != "n_valid"}
    return ({k: float(v) for k, v in out.items()},
            {k: tape.gradient(v, p).numpy() for k, v in out.items()})


def assert_same(new, ref):
    (nv, ng), (rv, rg) = new, ref
    assert nv.keys() == rv.keys()
    for k in rv:
        np.testing.assert_allclose(nv[k], rv[k], rtol=1e-5, atol=1e-6, err_msg=k)
        scale = max(float(np.abs(rg[k]).max()), 1e-6)
        np.testing.assert_allclose(ng[k], rg[k], rtol=0, atol=1e-5 * scale, err_msg=f"gradient of {k}")


@pytest.mark.parametrize("n_in,n_out", [(16, 240), (24, 360), (32, 480), (40, 640), (10, 120), (32, 32), (9, 5)])
def test_interpolation_matrix_reproduces_tf_resize(n_in, n_out):
    x = tf.random.stateless_uniform([3, n_in, 4, 1], [1, n_in], 0.0, 10.0)
    ref = tf.image.resize(x, [n_out, 4], method="bilinear")[..., 0]
    m = losses.interpolation_matrix(n_in, n_out).numpy()
    assert m.shape == (n_out, n_in)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)
    assert ((m > 0).sum(axis=1) <= 2).all()  # bilinear: at most two neighbours per output pixel
    np.testing.assert_allclose(np.einsum("Oi,bic->bOc", m, x[..., 0].numpy()), ref.numpy(), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("crop", CROP_SIZES)
@pytest.mark.parametrize("stride", [1, 4])
def test_compute_losses_equals_the_reference(crop, stride):
    pred, batch = case(crop, stride, seed=crop[0] + stride)
    seed = tf.constant([3, 7], tf.int64)
    for per_image in (False, True):
        cfg = losses.LossConfig(si_per_image=per_image, vnl_samples=300)
        assert_same(values_and_grads(lambda p: losses.compute_losses(p, batch, seed, cfg), pred),
                    values_and_grads(lambda p: ref_compute(p, batch, seed, cfg), pred))


def test_each_loss_equals_the_reference():
    pred, b = case((240, 384), 1, seed=5)
    d, v = b["depth"], b["valid"]
    pairs = [(lambda p: losses.si_log_loss(p, d, v), lambda p: ref_si(p, d, v)),
             (lambda p: losses.si_log_loss(p, d, v, per_image=True), lambda p: ref_si(p, d, v, per_image=True)),
             (lambda p: losses.gradient_loss(p, b["grad_x"], b["grad_y"]),
              lambda p: ref_grad(p, b["grad_x"], b["grad_y"])),
             (lambda p: losses.robust_loss(p, d, v), lambda p: ref_robust(p, d, v)),
             (lambda p: losses.robust_loss(p, d, v, alpha=0.5), lambda p: ref_robust(p, d, v, alpha=0.5))]
    for new, ref in pairs:
        assert_same(values_and_grads(new, pred), values_and_grads(ref, pred))


def test_unknown_shapes_in_a_traced_step_equal_the_reference():
    """The trainer's step is traced with relaxed shapes: sizes known only at run time, both when the prediction
    needs a resize and when it is already at the targets' size (returned as is)."""
    seed = tf.constant([1, 2], tf.int64)
    cfg = losses.LossConfig(si_per_image=True, vnl_samples=200)
    spec = tf.TensorSpec([None, None, None, 1], tf.float32)
    batch_spec = dict(depth=spec, valid=spec, grad_x=spec, grad_y=spec, intrinsics=tf.TensorSpec([None, 4]))

    def traced(fn):
        @tf.function(input_signature=[spec, batch_spec])
        def f(p, batch):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(p)
                out = {k: v for k, v in fn(p, batch).items() if k != "n_valid"}
            return out, {k: tape.gradient(v, p) for k, v in out.items()}
        return f

    new = traced(lambda p, b: losses.compute_losses(p, b, seed, cfg))
    ref = traced(lambda p, b: ref_compute(p, b, seed, cfg))
    pred, batch = case((360, 512), 4, seed=2)
    same_size = tf.constant(np.random.default_rng(0).uniform(0.5, 20, batch["depth"].shape).astype("f4"))
    for p in (pred, same_size):
        (nv, ng), (rv, rg) = new(p, batch), ref(p, batch)
        assert_same(({k: float(v) for k, v in nv.items()}, {k: v.numpy() for k, v in ng.items()}),
                    ({k: float(v) for k, v in rv.items()}, {k: v.numpy() for k, v in rg.items()}))
