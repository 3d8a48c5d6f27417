"""litedepth_tf.training.reweight: dynamic (learnable sigma) and fixed loss weighting, each term times its loss
weight first (1 / 0.25 / 2.5 / 0.2 by default, the authors' auto config)."""

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training import reweight

LOSSES = {"si": 0.7, "grad": 1.3, "vnl": 0.4, "robust": 2.2}
WEIGHTS = dict(zip(reweight.TERMS, reweight.LOSS_WEIGHTS))


def as_tensors(d):
    return {k: tf.constant(v, tf.float32) for k, v in d.items()}


def dynamic_formula(losses, sigmas, weights=WEIGHTS):
    return sum(0.5 / s ** 2 * weights[t] * losses[t] + np.log(1 + s ** 2) for t, s in sigmas.items())


def test_dynamic_init_names_and_value():
    layer = reweight.DynamicReweight()
    assert layer.terms == ("si", "grad", "vnl", "robust")
    names = [v.name.split("/")[-1].split(":")[0] for v in layer.trainable_variables]
    assert names == ["sigma_si", "sigma_grad", "sigma_vnl", "sigma_robust"]
    assert all(float(v) == 1.0 for v in layer.trainable_variables)
    got = float(layer(as_tensors({**LOSSES, "extra": 9.0})))
    assert got == pytest.approx(dynamic_formula(LOSSES, dict.fromkeys(LOSSES, 1.0)), rel=1e-6)


def test_dynamic_value_and_gradient_at_other_sigmas():
    layer = reweight.DynamicReweight()
    sigmas = {"si": 0.5, "grad": 2.0, "vnl": 1.5, "robust": 0.8}
    for v, t in zip(layer.trainable_variables, layer.terms):
        v.assign(sigmas[t])
    with tf.GradientTape() as tape:
        total = layer(as_tensors(LOSSES))
    assert float(total) == pytest.approx(dynamic_formula(LOSSES, sigmas), rel=1e-6)
    grads = tape.gradient(total, layer.trainable_variables)
    for g, t in zip(grads, layer.terms):
        s = sigmas[t]
        assert float(g) == pytest.approx(-WEIGHTS[t] * LOSSES[t] / s ** 3 + 2 * s / (1 + s ** 2), rel=1e-5)


def test_dynamic_gradient_reaches_the_losses():
    layer = reweight.DynamicReweight()
    x = tf.Variable(0.7)
    with tf.GradientTape() as tape:
        total = layer({**as_tensors(LOSSES), "si": x})
    assert float(tape.gradient(total, x)) == pytest.approx(0.5)


def test_fixed_weights():
    layer = reweight.FixedWeights()
    assert layer.terms == ("si", "grad", "vnl", "robust") and not layer.trainable_variables and not layer.weights
    expected = 1.0 * 0.7 + 0.25 * 1.3 + 2.5 * 0.4 + 0.2 * 2.2
    assert float(layer(as_tensors(LOSSES))) == pytest.approx(expected, rel=1e-6)
    custom = reweight.FixedWeights(weights=(1, 0, 0, 1))
    assert float(custom(as_tensors(LOSSES))) == pytest.approx(0.7 + 2.2, rel=1e-6)
    with pytest.raises(ValueError):
        reweight.FixedWeights(weights=(1.0, 2.0))


def test_weights_of_a_subset_and_bad_counts():
    layer = reweight.make_weighting("dynamic", ["grad", "robust"], weights=(1, 0.5, 2.5, 3.0))
    assert layer.terms == ("grad", "robust") and layer.term_weights == (0.5, 3.0)
    assert float(layer(as_tensors(LOSSES))) == pytest.approx(
        dynamic_formula(LOSSES, {"grad": 1.0, "robust": 1.0}, {"grad": 0.5, "robust": 3.0}), rel=1e-6)
    with pytest.raises(ValueError, match="one for each"):
        reweight.make_weighting("fixed", weights=(1, 2))


@pytest.mark.parametrize("cls, kwargs", [(reweight.DynamicReweight, dict(init_sigma=0.5, weights=(1, 2, 3, 4))),
                                         (reweight.FixedWeights, dict(weights=(2.0, 1.0, 0.5, 0.1)))])
def test_get_config_round_trip(cls, kwargs):
    layer = cls(**kwargs)
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.terms == layer.terms
    assert float(clone(as_tensors(LOSSES))) == pytest.approx(float(layer(as_tensors(LOSSES))), rel=1e-6)


def test_checkpoint_round_trip(tmp_path):
    layer = reweight.DynamicReweight()
    layer.trainable_variables[2].assign(3.0)
    path = tf.train.Checkpoint(weighting=layer).save(str(tmp_path / "ckpt"))
    fresh = reweight.DynamicReweight()
    tf.train.Checkpoint(weighting=fresh).restore(path).assert_consumed()
    assert [float(v) for v in fresh.trainable_variables] == [1.0, 1.0, 3.0, 1.0]
    tf.train.Checkpoint(weighting=reweight.FixedWeights()).save(str(tmp_path / "fixed"))


def test_variables_under_a_strategy_scope():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        layer = reweight.DynamicReweight()
    assert len(layer.trainable_variables) == 4
    total = strategy.run(tf.function(lambda d: layer(d)), (as_tensors(LOSSES),))
    assert float(strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None)) == pytest.approx(
        dynamic_formula(LOSSES, dict.fromkeys(LOSSES, 1.0)), rel=1e-6)
