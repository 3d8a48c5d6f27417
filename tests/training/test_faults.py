"""Trainer.fit under the faults of real machines: a write that fails (full disk) at each kind of output, and
SIGTERM / SIGINT (preemption, Ctrl-C).

Full disk, at each kind of write of the trainer: the checkpoint (`tests.helpers.fail_checkpoint_saves`, TensorFlow's
SaveV2 error), `last.weights.h5` and `summary.json` (`tests.helpers.fail_writes`: ENOSPC at the fsync of the temp
file), the TensorBoard events file (the flush op raising TensorFlow's RESOURCE_EXHAUSTED, as observed on a full
tmpfs). Each ends `fit` with one `WriteError` line naming the file, the error and the last complete checkpoint;
nothing half-written is left; that checkpoint reads back.

Signals are real: the step function sends them to this process after a chosen step (the trainer's handler then
runs between two bytecodes, as for a signal from outside). A small conv + BatchNorm model keeps each run at a
second; the step, losses, weighting, optimizer and checkpoints are the real ones. The command-level behaviour
(exit status, the line, resume bit for bit, multi-worker) is in tests/e2e and tests/training/test_distribute.py.
"""

from __future__ import annotations

import glob
import os
import signal

import h5py
import keras
import pytest
import tensorflow as tf

from litedepth_tf.common.files import WriteError
from litedepth_tf.training.checkpoints import check_checkpoint
from litedepth_tf.training.loop import LoopConfig, Trainer
from litedepth_tf.training.preemption import Preempted
from tests.helpers import fail_checkpoint_saves, fail_writes
from tests.training.test_loop import tiny_batch

STEPS = 4
CFG = dict(log_every=1, image_every=0, eval_every=0, ckpt_every=1, checkpoint_iterator=True)


def toy_trainer(seed=0):
    from litedepth_tf import train
    from litedepth_tf.training.losses import LossConfig, compute_losses

    keras.utils.set_random_seed(seed)
    inp = keras.Input((64, 96, 3))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, strides=4, padding="same")(inp))
    depth = keras.layers.Lambda(lambda t: 1.0 + 10.0 * tf.sigmoid(t))(keras.layers.Conv2D(1, 1)(x))
    model = keras.Model(inp, {"depth": depth})
    return Trainer(model, keras.optimizers.Adam(1e-3), lambda out, b, s: compute_losses(out["depth"], b, s,
                                                                                        LossConfig()),
                   train.make_weighting("dynamic"))


def _data():
    return tf.data.Dataset.from_tensors(tiny_batch()).repeat()


def _fit(trainer, run_dir, resume=False, **cfg):
    return trainer.fit(_data(), STEPS, run_dir, cfg=LoopConfig(**(CFG | cfg)), batch_size=2, resume=resume)


def _hidden(run_dir):
    return [os.path.relpath(os.path.join(d, n), run_dir) for d, ds, fs in os.walk(run_dir) for n in fs + ds
            if n.startswith(".") or n.endswith("_temp")]


@pytest.fixture
def full_disk(monkeypatch):
    """kind -> arms the fault at step 2's write of that kind (3 for the checkpoint)."""
    from tensorflow.python.ops import gen_summary_ops

    def arm(kind):
        if kind == "checkpoint":
            fail_checkpoint_saves(monkeypatch).add(3)
        elif kind == "weights":
            fail_writes(monkeypatch, "last.weights.h5", nth=2)
        elif kind == "json":
            fail_writes(monkeypatch, "summary.json")
        elif kind == "tensorboard":
            real = gen_summary_ops.flush_summary_writer

            def flush(resource, *a, **k):
                if os.path.exists(os.path.join(arm.run_dir, "ckpt", "ckpt-2.index")):  # step 2's flush
                    events = glob.glob(os.path.join(arm.run_dir, "events.out.tfevents.*"))[0]
                    raise tf.errors.ResourceExhaustedError(
                        None, None, "{{function_node __wrapped__FlushSummaryWriter_device_/job:localhost/replica:0/"
                        f"task:0/device:CPU:0}}}} {events}; No space left on device\n\tFailed to flush 3 events to "
                        f"{events}\n\tCould not flush events file. [Op:FlushSummaryWriter]")
                return real(resource, *a, **k)

            monkeypatch.setattr(gen_summary_ops, "flush_summary_writer", flush)
    return arm


@pytest.mark.parametrize("kind, file, last", [("checkpoint", "ckpt/ckpt-3", 2), ("weights", "last.weights.h5", 2),
                                              ("tensorboard", "events.out.tfevents.", 2),
                                              ("json", "summary.json", STEPS)])
def test_a_full_disk_ends_fit_with_one_line_naming_the_file_and_the_last_checkpoint(tmp_path, full_disk, kind,
                                                                                    file, last):
    full_disk.run_dir = str(tmp_path)
    full_disk(kind)
    with pytest.raises(WriteError) as err:
        _fit(toy_trainer(), tmp_path)
    msg = str(err.value)
    ckpt = os.path.join(tmp_path, "ckpt", f"ckpt-{last}")
    assert "\n" not in msg and msg.startswith(f"cannot write {'TensorBoard events ' if kind == 'tensorboard' else ''}"
                                              f"{'checkpoint ' if kind == 'checkpoint' else ''}{tmp_path}/{file}"), msg
    assert "No space left on device" in msg, msg
    assert msg.endswith(f"; last complete checkpoint: step {last} ({ckpt}); continue with --resume once the file "
                        "can be written"), msg
    assert not _hidden(tmp_path)  # no temp file, no partial checkpoint shard
    assert tf.train.latest_checkpoint(os.path.join(tmp_path, "ckpt")) == ckpt and check_checkpoint(ckpt) is None
    if kind == "weights":  # the previous step's file, whole
        with h5py.File(tmp_path / "last.weights.h5", "r") as f:
            assert len(f.keys()) > 0


def _signal_after(trainer, step, *signums):
    real = trainer.train_step

    def train_step(batch):
        logs = real(batch)
        if int(trainer.step.numpy()) == step:
            for signum in signums:
                os.kill(os.getpid(), signum)
        return logs

    trainer.train_step = train_step


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_current_step_with_a_checkpoint_and_resume_continues(tmp_path, signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    trainer = toy_trainer()
    _signal_after(trainer, 2, signum)
    with pytest.raises(Preempted) as stop:
        _fit(trainer, tmp_path, ckpt_every=0)  # no periodic checkpoint: the one at step 2 is the signal's
    ckpt = os.path.join(tmp_path, "ckpt", "ckpt-2")
    assert stop.value.signum == signum and stop.value.step == 2 and stop.value.checkpoint == ckpt
    assert stop.value.exit_status == 128 + signum
    assert str(stop.value) == (f"preempted by {signal.Signals(signum).name} at step 2 of {STEPS}: checkpoint {ckpt} "
                               "written; continue with --resume")
    assert int(trainer.step.numpy()) == 2 and tf.train.latest_checkpoint(os.path.join(tmp_path, "ckpt")) == ckpt
    assert check_checkpoint(ckpt) is None and os.path.isfile(tmp_path / "last.weights.h5")
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are put back
    resumed = toy_trainer(seed=1)
    summary = _fit(resumed, tmp_path, resume=True, ckpt_every=0)
    assert summary["step"] == STEPS and int(resumed.optimizer.iterations.numpy()) == STEPS


def test_a_second_signal_stops_at_once(tmp_path):
    # the handler in place before the run: Python's default_int_handler, or SIG_IGN when the suite itself was
    # started as a background job (a shell without job control starts those with SIGINT ignored)
    before = signal.getsignal(signal.SIGINT)
    trainer = toy_trainer()
    _signal_after(trainer, 2, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        _fit(trainer, tmp_path)
    assert signal.getsignal(signal.SIGINT) is before  # put back before the KeyboardInterrupt
    # the step in progress is not saved (as after a kill); the checkpoints written before are listed and whole
    latest = tf.train.latest_checkpoint(os.path.join(tmp_path, "ckpt"))
    assert latest.endswith("ckpt-1") and check_checkpoint(latest) is None
