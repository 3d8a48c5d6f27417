"""Checkpoints: `--resume` checks a checkpoint before using it and falls back to the newest intact one; a save
that fails (full disk) names the checkpoint and leaves nothing of it behind.

Real TensorFlow checkpoints (a few variables and a tf.data iterator, whose state is a DT_VARIANT tensor) through
the real CheckpointManager; each fault is made on disk the way it happens: a data file cut short (a partial copy),
random bytes over the data file or the index (a disk error), a missing .index, a state file naming a checkpoint
whose files were deleted, a missing state file. The save failure raises what TensorFlow raises on a full disk
(`tests.helpers.fail_checkpoint_saves`: RESOURCE_EXHAUSTED from SaveV2, message as observed on a full tmpfs) from
the op the saver calls; the real full file system is in tests/e2e/test_faults.py."""

from __future__ import annotations

import glob
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.common import cli
from litedepth_tf.common.files import WriteError
from litedepth_tf.training.checkpoints import Checkpoints, DamagedCheckpointError, check_checkpoint
from tests.helpers import fail_checkpoint_saves

STEPS = (1, 2, 3)


class _State:
    """What the Trainer gives the manager: `checkpoint(iterator)` over its variables (here: two, and a counter)."""

    def __init__(self):
        self.w = tf.Variable(np.zeros((64, 32), np.float32))
        self.step = tf.Variable(0, dtype=tf.int64)

    def checkpoint(self, iterator=None):
        items = dict(w=self.w, step=self.step)
        if iterator is not None:
            items["data_iterator"] = iterator
        return tf.train.Checkpoint(**items)

    def set(self, step):
        self.w.assign(np.full((64, 32), step, np.float32))
        self.step.assign(step)


def _iterator():
    return iter(tf.data.Dataset.range(100))


def _make(folder, steps=STEPS, keep=3):
    """A folder with checkpoints of `steps` (the value of `w` and `step` = the step); the manager of a fresh
    process (resume) over it."""
    state, it = _State(), _iterator()
    ckpts = Checkpoints(state, it, str(folder), keep)
    for s in steps:
        state.set(s)
        next(it)
        ckpts.save(s)
    fresh = _State()
    return Checkpoints(fresh, _iterator(), str(folder), keep), fresh


def _data(folder, step):
    return os.path.join(folder, f"ckpt-{step}.data-00000-of-00001")


def _damage(folder, step, how):
    rng = np.random.default_rng(step)
    data, index = _data(folder, step), os.path.join(folder, f"ckpt-{step}.index")
    if how == "truncated data":
        os.truncate(data, os.path.getsize(data) // 2)
    elif how == "random data":
        open(data, "wb").write(rng.bytes(os.path.getsize(data)))
    elif how == "random index":
        open(index, "wb").write(rng.bytes(os.path.getsize(index)))
    elif how == "missing index":
        os.remove(index)
    elif how == "deleted":  # the state file still names it
        for path in glob.glob(os.path.join(folder, f"ckpt-{step}.*")):
            os.remove(path)
    else:
        raise ValueError(how)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and r.name == "litedepth_tf.training.checkpoints"]


def test_the_newest_intact_checkpoint_is_used_silently(tmp_path, caplog):
    ckpts, _ = _make(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert ckpts.checkpoint_to_resume() == os.path.join(tmp_path, "ckpt-3")
    assert not _warnings(caplog)
    assert check_checkpoint(os.path.join(tmp_path, "ckpt-3")) is None


@pytest.mark.parametrize("how, file", [("truncated data", "ckpt-3.data-00000-of-00001"),
                                       ("random data", "ckpt-3.data-00000-of-00001"),
                                       ("random index", "ckpt-3.index"), ("missing index", "ckpt-3.index"),
                                       ("deleted", "ckpt-3.index")])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, how, file):
    _, _ = _make(tmp_path)
    _damage(tmp_path, 3, how)
    ckpts, fresh = Checkpoints(_State(), _iterator(), str(tmp_path), 3), None
    assert check_checkpoint(os.path.join(tmp_path, "ckpt-3")) is not None
    with caplog.at_level(logging.WARNING):
        path = ckpts.checkpoint_to_resume()
    assert path == os.path.join(tmp_path, "ckpt-2")
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings  # one warning, naming the damaged checkpoint's file and the one used
    assert f"ckpt-3 ({file}" in warnings[0] and "ckpt-2 (step 2)" in warnings[0] and str(tmp_path) in warnings[0]
    # the state file now ends at ckpt-2, and what is restored from it is step 2's state, iterator included
    assert tf.train.latest_checkpoint(str(tmp_path)) == path
    assert [os.path.basename(p) for p in ckpts.manager.checkpoints] == ["ckpt-1", "ckpt-2"]
    fresh = _State()
    it = _iterator()
    fresh.checkpoint(it).restore(path).assert_existing_objects_matched()
    assert int(fresh.step.numpy()) == 2 and np.all(fresh.w.numpy() == 2) and int(next(it)) == 2
    # the next saves rotate as usual (timestamps kept): ckpt-3 replaced, then ckpt-1 deleted by ckpt-4
    ckpts.save(3)
    ckpts.save(4)
    assert [os.path.basename(p) for p in ckpts.manager.checkpoints] == ["ckpt-2", "ckpt-3", "ckpt-4"]
    assert not glob.glob(os.path.join(tmp_path, "ckpt-1.*"))
    assert check_checkpoint(os.path.join(tmp_path, "ckpt-3")) is None


def test_several_damaged_checkpoints_are_named_in_one_warning(tmp_path, caplog):
    _make(tmp_path)
    _damage(tmp_path, 3, "truncated data")
    _damage(tmp_path, 2, "missing index")
    ckpts = Checkpoints(_State(), _iterator(), str(tmp_path), 3)
    with caplog.at_level(logging.WARNING):
        assert ckpts.checkpoint_to_resume() == os.path.join(tmp_path, "ckpt-1")
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "ckpt-3 (" in warnings[0] and "ckpt-2 (ckpt-2.index is missing" in warnings[0]


def test_no_intact_checkpoint_is_one_input_error_naming_the_folder(tmp_path):
    _make(tmp_path)
    for step, how in zip(STEPS, ("random data", "truncated data", "missing index")):
        _damage(tmp_path, step, how)
    ckpts = Checkpoints(_State(), _iterator(), str(tmp_path), 3)
    with pytest.raises(DamagedCheckpointError) as err:
        ckpts.checkpoint_to_resume()
    msg = str(err.value)
    assert isinstance(err.value, cli.InputError) and "\n" not in msg
    assert f"no intact checkpoint in {tmp_path}:" in msg and all(f"ckpt-{s} (" in msg for s in STEPS), msg


def test_an_empty_folder_resumes_from_scratch(tmp_path):
    assert Checkpoints(_State(), _iterator(), str(tmp_path), 3).checkpoint_to_resume() is None


def test_a_missing_state_file_finds_checkpoints_by_name(tmp_path, caplog):
    _make(tmp_path)
    os.remove(os.path.join(tmp_path, "checkpoint"))  # e.g. a partial copy of the run folder
    ckpts = Checkpoints(_State(), _iterator(), str(tmp_path), 3)
    with caplog.at_level(logging.WARNING):
        assert ckpts.checkpoint_to_resume() == os.path.join(tmp_path, "ckpt-3")
    assert len(_warnings(caplog)) == 1 and "found by its file name" in _warnings(caplog)[0]
    assert tf.train.latest_checkpoint(str(tmp_path)) == os.path.join(tmp_path, "ckpt-3")


@pytest.fixture
def full_disk_at_save(monkeypatch):
    return fail_checkpoint_saves(monkeypatch)


def test_a_failed_save_names_the_checkpoint_and_leaves_nothing_of_it(tmp_path, full_disk_at_save):
    ckpts, state = _make(tmp_path, steps=(1, 2))
    full_disk_at_save.add(3)
    state.set(3)
    with pytest.raises(WriteError) as err:
        ckpts.save(3)
    msg = str(err.value)
    assert msg == f"cannot write checkpoint {tmp_path}/ckpt-3: No space left on device", msg
    assert isinstance(err.value, cli.InputError)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index",
                                            "ckpt-2.data-00000-of-00001", "ckpt-2.index"]  # no ckpt-3_temp
    assert ckpts.last_complete().startswith(f"last complete checkpoint: step 2 ({tmp_path}/ckpt-2)")
    assert check_checkpoint(os.path.join(tmp_path, "ckpt-2")) is None
    full_disk_at_save.clear()  # space freed: the same manager saves again
    assert ckpts.save(3) == os.path.join(tmp_path, "ckpt-3")
