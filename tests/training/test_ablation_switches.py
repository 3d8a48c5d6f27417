"""The loss and distillation switches of the ablations: a loss term that is off contributes no gradient, the
gradient loss's mask modes through compute_losses, the L2 and channel-wise distillers against NumPy references,
the distillation ramp's values and the adapters' place in the trainer."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training import losses, reweight
from litedepth_tf.training.distill import (
    channel_wise_loss,
    l2_feature_loss,
    make_distill_fn,
    ramp_factor,
)


# ---- loss terms ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dynamic", "fixed"])
def test_weighting_over_a_subset(kind):
    w = reweight.make_weighting(kind, ["vnl", "si"])
    assert w.terms == ("si", "vnl")  # TERMS' order
    vals = {"si": tf.constant(2.0), "grad": tf.constant(100.0), "vnl": tf.constant(3.0), "robust": tf.constant(7.0)}
    got = float(w(vals))
    if kind == "fixed":
        assert got == pytest.approx(1.0 * 2.0 + 2.5 * 3.0)
    else:  # sigma = 1: 0.5 w L + log 2 per term
        assert got == pytest.approx(0.5 * 2.0 + 0.5 * 2.5 * 3.0 + 2 * np.log(2.0))
        assert [v.name for v in w.trainable_variables] == ["sigma_si", "sigma_vnl"]
    with pytest.raises(ValueError, match="non-empty subset"):
        reweight.make_weighting(kind, ["si", "ssim"])


def _batch(seed=0, h=8, w=10):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 10.0, (2, h, w, 1)).astype(np.float32)
    depth[0, 2:4, 3:6] = 0.0  # a hole
    intr = np.tile(np.array([[10.0, 10.0, w / 2, h / 2]], np.float32), (2, 1))
    return {"depth": tf.constant(depth), "intrinsics": tf.constant(intr)}


def test_a_term_that_is_off_contributes_no_gradient():
    """The filter of train.run's loss_fn: with the grad term off, the gradient of the total equals the gradient
    of the weighted sum of the other terms, and differs from the all-terms gradient."""
    batch = _batch()
    rng = np.random.default_rng(1)
    pred = tf.Variable(rng.uniform(1.0, 10.0, (2, 4, 5, 1)).astype(np.float32))
    seed = tf.constant([0, 1], tf.int64)
    cfg = losses.LossConfig(vnl_ratio=1.0)

    def grad_of(terms):
        weighting = reweight.make_weighting("fixed", terms)
        with tf.GradientTape() as tape:
            out = losses.compute_losses(pred, batch, seed, cfg)
            out = {k: v for k, v in out.items() if k in terms or k not in losses.TERMS}
            total = weighting({k: out[k] for k in weighting.terms})
            extra = [v for k, v in out.items() if k not in weighting.terms and k != "n_valid"]
            assert not extra  # an off term is not added as an extra loss either
        return tape.gradient(total, pred).numpy()

    g_off = grad_of(["si", "vnl", "robust"])
    with tf.GradientTape() as tape:
        out = losses.compute_losses(pred, batch, seed, cfg)
        ref = 1.0 * out["si"] + 2.5 * out["vnl"] + 0.2 * out["robust"]
    np.testing.assert_allclose(g_off, tape.gradient(ref, pred).numpy(), rtol=1e-5, atol=1e-7)
    assert np.abs(grad_of(list(losses.TERMS)) - g_off).max() > 1e-4  # the grad term does move the gradient


@pytest.mark.parametrize("mode", losses.GRAD_MASKS)
def test_grad_mask_modes_through_compute_losses(mode):
    """--grad_nan_mask reaches compute_losses: each mode gives gradient_loss of the downsampled ground truth in
    that mode, and the three differ on a batch with a hole."""
    batch = _batch()
    pred = tf.constant(np.random.default_rng(2).uniform(1.0, 10.0, (2, 4, 5, 1)).astype(np.float32))
    seed = tf.constant([0, 1], tf.int64)
    got = float(losses.compute_losses(pred, batch, seed, losses.LossConfig(grad_mask=mode))["grad"])
    small = losses.downsample_gt(batch["depth"], (4, 5))
    assert got == pytest.approx(float(losses.gradient_loss(pred, small, mode)), rel=1e-6)
    hole = np.zeros((2, 8, 10, 1), np.float32) + batch["depth"].numpy()
    hole[:, :, :6] = 0.0
    values = {m: float(losses.compute_losses(pred, dict(batch, depth=tf.constant(hole)), seed,
                                             losses.LossConfig(grad_mask=m))["grad"]) for m in losses.GRAD_MASKS}
    assert len(set(values.values())) == 3


# ---- distillers ---------------------------------------------------------------------------------------------
def _feats(seed=0, b=2, h=5, w=6, c=4):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(b, h, w, c)).astype(np.float32), (2 * rng.normal(size=(b, h, w, c)) + 0.3)
            .astype(np.float32))


def test_l2_against_numpy():
    s, t = _feats()
    assert float(l2_feature_loss(s, t)) == pytest.approx(float(np.mean((s - t) ** 2)), rel=1e-5)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_channel_wise_against_numpy(tau):
    s, t = _feats(1)
    b, h, w, c = s.shape
    total = 0.0
    for i in range(b):
        for ch in range(c):  # each channel's spatial map as a distribution over its h * w pixels
            ps = _softmax(s[i, :, :, ch].reshape(-1).astype(np.float64) / tau)
            pt = _softmax(t[i, :, :, ch].reshape(-1).astype(np.float64) / tau)
            total += np.sum(pt * np.log(pt / ps))
    ref = tau ** 2 * total / (b * c)
    assert float(channel_wise_loss(s, t, tau)) == pytest.approx(ref, rel=1e-4)
    assert float(channel_wise_loss(t, t, tau)) == pytest.approx(0.0, abs=1e-6)


def _tiny(width, name):
    inp = keras.Input((None, None, 3))
    out = {lvl: keras.layers.Conv2D(width, 1, name=f"{name}_{lvl}")(inp) for lvl in ("feat_4", "feat_8", "feat_16")}
    return keras.Model(inp, out, name=name)


@pytest.mark.parametrize("distiller", ["l2", "channel"])
def test_hook_adapts_widths_and_weights(distiller):
    keras.utils.set_random_seed(0)
    student, teacher = _tiny(3, "s"), _tiny(5, "t")
    fn = make_distill_fn(teacher, weight=10.0, distiller=distiller, student=student)
    assert len(fn.trainable_variables) == 6  # a 1x1 conv (kernel, bias) per level: 3 -> 5 channels
    img = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    batch = {"image": tf.constant(img), "valid": tf.ones((2, 4, 4, 1))}
    s_out = student(img)
    got = fn(s_out, batch)
    t_out = teacher(img)
    conv = fn.adapters.adapt_feat_8
    ref_fn = l2_feature_loss if distiller == "l2" else channel_wise_loss
    assert float(got["distill_8"]) == pytest.approx(10.0 * float(ref_fn(conv(s_out["feat_8"]), t_out["feat_8"])),
                                                    rel=1e-5)
    same = make_distill_fn(_tiny(3, "t2"), distiller=distiller, student=student)
    assert same.trainable_variables == []  # equal widths: identity, no adapter


def test_ramp_values():
    np.testing.assert_allclose(ramp_factor([0, 101, 303, 100899, 10**7]), [0.0, 0.5, 0.75, 0.999, 0.999])
    assert float(ramp_factor(tf.constant(101, tf.int64))) == pytest.approx(0.5)
    step = tf.Variable(0, dtype=tf.int64)
    teacher, student = _tiny(3, "rt"), _tiny(3, "rs")
    fn = make_distill_fn(teacher, weight=10.0, distiller="l2", student=student, ramp=True, step=lambda: step)
    img = np.random.default_rng(2).uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
    batch = {"image": tf.constant(img), "valid": tf.ones((1, 4, 4, 1))}
    plain = make_distill_fn(teacher, weight=10.0, distiller="l2", student=student)(student(img), batch)
    assert float(fn(student(img), batch)["distill_4"]) == 0.0
    step.assign(101)
    assert float(fn(student(img), batch)["distill_4"]) == pytest.approx(0.5 * float(plain["distill_4"]), rel=1e-5)
    with pytest.raises(ValueError, match="ramp=True needs step"):
        make_distill_fn(teacher, ramp=True)
    with pytest.raises(ValueError, match="distiller must be one of"):
        make_distill_fn(teacher, distiller="kd")
