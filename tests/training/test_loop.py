"""Trainer: bad steps never touch the weights, K bad steps abort (naming step + files, checkpoint written),
fit writes checkpoints / weights / TensorBoard scalars and images, --resume continues (step, optimizer, iterator).

Small: the student on 64x96 inputs (R-crop 240x384), batch 2, a handful of steps on 6 synthetic frames."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training import tensorboard as tb
from litedepth_tf.models.student import build_student
from litedepth_tf.training.loop import LoopConfig, NonFiniteError, Trainer
from tests.helpers import synthetic_root

CROP = ((240, 384),)  # -> 64x96 network input


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "trainer_data", 6, 2, seed=1)


def make_trainer(seed=0, lr=1e-3, init_seed=None):
    """The real losses / weighting / optimizer of train.py (stage-1 student recipe), at tiny size. ``seed`` is the
    run's seed (VNL triplets); ``init_seed`` (default ``seed``) only changes the initial weights."""
    from litedepth_tf import train

    keras.utils.set_random_seed(seed if init_seed is None else init_seed)
    model = build_student()
    weighting = train.make_weighting("dynamic")
    from litedepth_tf.training.losses import LossConfig, compute_losses

    cfg = LossConfig()
    opt = keras.optimizers.Adam(lr, epsilon=1e-3)
    return Trainer(model, opt, lambda out, b, s: compute_losses(out["depth"], b, s, cfg), weighting, seed=seed)


def tiny_batch(nan=False, inf_depth=False):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (2, 64, 96, 3)).astype("f4")
    depth = rng.uniform(1, 5, (2, 240, 384, 1)).astype("f4")
    if nan:
        img[0, 3, 3, 0] = np.nan
    if inf_depth:
        depth[1, 5, 5, 0] = np.inf
    d = tf.constant(depth)
    k = np.tile(np.array([[259.4, 259.7, 192.0, 120.0]], "f4"), (2, 1))
    return dict(image=tf.constant(img), depth=d, valid=tf.cast(d > 0, tf.float32), intrinsics=tf.constant(k),
                rgb_path=tf.constant(["/x/a.png", "/x/b.png"]))


def state(trainer):
    return [np.array(v) for v in trainer.model.weights + trainer.weighting.weights + trainer.optimizer.variables]


def test_non_finite_step_changes_nothing(tmp_path):
    trainer = make_trainer()
    logs = trainer.train_step(tiny_batch())
    assert float(logs["ok"]) == 1.0 and np.isfinite(float(logs["loss"]))
    before = state(trainer)
    logs = trainer.train_step(tiny_batch(nan=True))  # NaN image -> NaN BatchNorm statistics + loss
    assert float(logs["ok"]) == 0.0
    after = state(trainer)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after))  # weights, BN, sigmas, slots
    assert int(trainer.skipped.numpy()) == 1 and int(trainer.bad_in_row.numpy()) == 1
    assert int(trainer.step.numpy()) == 2 and int(trainer.optimizer.iterations.numpy()) == 1
    trainer.train_step(tiny_batch())
    assert int(trainer.bad_in_row.numpy()) == 0 and int(trainer.skipped.numpy()) == 1
    assert not all(np.array_equal(a, b) for a, b in zip(after, state(trainer)))  # a good step trains again


def test_inf_in_a_batch_or_only_in_the_gradient_changes_nothing():
    """The test above has a NaN loss. Here an inf depth value, and a gradient that is non-finite while the loss
    stays finite (sqrt at 0: value 0, derivative inf), are not applied either: the gradient-norm check catches
    what the loss check cannot. A small conv + BatchNorm model keeps it fast; the step, losses,
    weighting and optimizer are the real ones."""
    from litedepth_tf import train
    from litedepth_tf.training.losses import LossConfig, compute_losses

    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 96, 3))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, strides=4, padding="same")(inp))
    depth = keras.layers.Lambda(lambda t: 40.0 * tf.sigmoid(t))(keras.layers.Conv2D(1, 1)(x))
    model = keras.Model(inp, {"depth": depth})
    trainer = Trainer(model, keras.optimizers.Adam(1e-3, epsilon=1e-3),
                      lambda out, b, s: compute_losses(out["depth"], b, s, LossConfig()), train.make_weighting("dynamic"))

    def extra(outputs, batch):  # a term whose value is 0 and whose gradient is inf / NaN, only on poisoned batches
        if "poison" not in batch:
            return {}
        d = tf.reduce_mean(outputs["depth"])
        return {"poison": tf.sqrt(d - tf.stop_gradient(d))}

    trainer.extra_loss_fn = extra
    trainer.train_step(tiny_batch())
    before = state(trainer)
    logs = trainer.train_step(tiny_batch(inf_depth=True))
    assert float(logs["ok"]) == 0.0
    logs = trainer.train_step(dict(tiny_batch(), poison=tf.constant(1.0)))
    assert float(logs["ok"]) == 0.0 and np.isfinite(float(logs["loss"])) and not np.isfinite(float(logs["grad_norm"]))
    assert all(np.array_equal(a, b) for a, b in zip(before, state(trainer)))  # weights, BN, sigmas, slots
    assert int(trainer.skipped.numpy()) == 2 and int(trainer.optimizer.iterations.numpy()) == 1


def test_k_bad_steps_abort_with_files_and_checkpoint(tmp_path):
    trainer = make_trainer()
    bad = tiny_batch(nan=True)
    ds = tf.data.Dataset.from_tensors(bad).repeat()
    with pytest.raises(NonFiniteError) as err:
        trainer.fit(ds, 20, tmp_path, cfg=LoopConfig(max_bad_steps=3, log_every=1, ckpt_every=0, image_every=0,
                                                     checkpoint_iterator=False), batch_size=2)
    msg = str(err.value)
    assert "3 non-finite" in msg and "step 3" in msg and "/x/a.png" in msg and "/x/b.png" in msg
    ckpt = tf.train.latest_checkpoint(os.path.join(tmp_path, "ckpt"))
    assert ckpt is not None and ckpt in msg
    fresh = make_trainer(seed=1)
    fresh.checkpoint().restore(ckpt).expect_partial()
    trainer_ref = make_trainer()  # same seed, never trained: the checkpoint holds the untouched initial weights
    assert all(np.array_equal(a, b) for a, b in zip(fresh.model.get_weights(), trainer_ref.model.get_weights()))


def _dataset(data_root):
    from litedepth_tf.data.pipeline import make_dataset

    return make_dataset(data_root, "train", 2, training=True, seed=3, deterministic=True, crop_sizes=CROP)


def test_fit_writes_outputs_and_tensorboard(data_root, tmp_path):
    from litedepth_tf.data.pipeline import make_dataset

    trainer = make_trainer()
    val = make_dataset(data_root, "local_val", 1, training=False)
    cfg = LoopConfig(log_every=2, image_every=2, eval_every=4, ckpt_every=2, val_max_images=2)
    summary = trainer.fit(_dataset(data_root), 4, tmp_path, val_ds=val, cfg=cfg, batch_size=2)
    assert summary["step"] == 4 and summary["skipped_steps"] == 0
    assert np.isfinite(summary["best_si_rmse"])
    for name in ("best.weights.h5", "last.weights.h5", "summary.json", "best_metrics.json"):
        assert os.path.isfile(tmp_path / name), name
    events = tb.read_events(tmp_path)
    for tag in ("loss/si", "loss/grad", "loss/vnl", "loss/robust", "loss/loss", "lr", "grad_norm", "images_per_s",
                "skipped_steps", "val/si_rmse"):
        assert tag in events, (tag, sorted(events))
    assert any(t.startswith("sigma/") for t in events), sorted(events)
    assert [s for s, _ in events["loss/si"]] == [2, 4]
    for tag in ("train/rgb", "train/gt", "train/pred", "train/abs_rel_error"):
        assert events[tag][0][1] == (240, 384), tag  # panels at the depth map's resolution
    assert events["val/pred"][0][1] == (480, 640)
    reloaded = build_student(weights=str(tmp_path / "last.weights.h5"))
    assert all(np.array_equal(a, b) for a, b in zip(reloaded.get_weights(), trainer.model.get_weights()))


def test_resume_continues_step_optimizer_and_data(data_root, tmp_path):
    cfg = LoopConfig(log_every=1, image_every=0, ckpt_every=2)
    first = make_trainer()
    first.fit(_dataset(data_root), 2, tmp_path, cfg=cfg, batch_size=2)
    # an uninterrupted reference: 4 steps in one go
    ref = make_trainer()
    ref.fit(_dataset(data_root), 4, tmp_path / "ref", cfg=cfg, batch_size=2)

    resumed = make_trainer(init_seed=5)  # other init (same run seed): everything must come from the checkpoint
    resumed.fit(_dataset(data_root), 4, tmp_path, cfg=cfg, batch_size=2, resume=True)
    assert int(resumed.step.numpy()) == 4 and int(resumed.optimizer.iterations.numpy()) == 4
    assert resumed.learning_rate() == pytest.approx(ref.learning_rate())
    # same data positions and same updates: the resumed run equals the uninterrupted one (CPU, deterministic
    # pipeline; float reductions may reorder across runs, hence the tolerance)
    for a, b in zip(resumed.model.get_weights(), ref.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_precise_batchnorm_is_the_mean_of_batch_statistics():
    """recalibrate_batchnorm: moving mean / variance := the average over batches of each batch's statistics
    (NumPy reference on a one-BN model); trainable weights untouched; momentum restored."""
    from litedepth_tf.training.reweight import FixedWeights

    inp = keras.Input((4, 4, 3))
    bn = keras.layers.BatchNormalization(momentum=0.99, name="bn")
    y = bn(keras.layers.Conv2D(2, 1, name="conv")(inp))
    model = keras.Model(inp, {"depth": y})
    trainer = Trainer(model, keras.optimizers.Adam(1e-3), lambda o, b, s: {}, FixedWeights())
    rng = np.random.default_rng(0)
    batches = [{"image": tf.constant(rng.normal(k, 1 + k, (3, 4, 4, 3)).astype("f4"))} for k in range(3)]
    kernel, bias = model.get_layer("conv").get_weights()
    feats = [np.einsum("bhwc,cd->bhwd", b["image"].numpy(), kernel[0, 0]) + bias for b in batches]
    before = [np.array(w) for w in model.trainable_weights]
    assert trainer.recalibrate_batchnorm(iter(batches)) == 3
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([f.mean((0, 1, 2)) for f in feats], 0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([f.var((0, 1, 2)) for f in feats], 0), rtol=1e-4)
    assert all(np.array_equal(a, np.array(w)) for a, w in zip(before, model.trainable_weights))
    assert bn.momentum == 0.99
