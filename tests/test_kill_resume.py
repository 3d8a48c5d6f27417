"""kill -9 during training (issue 7 item 1): a `python -m litedepth_tf.train` process killed at a random step, or
killed while a checkpoint is being written (after the checkpoint's data/index files, before the `checkpoint`
state file names it), resumes with --resume from the last complete checkpoint: every checkpoint the state file
lists is readable, and the killed-and-resumed run ends with the same step, optimizer iterations, loss sigmas,
learning rate and weights as an uninterrupted run (--deterministic; tolerance rtol 1e-4 / atol 1e-5 because a
restarted process may order float reductions differently; in practice the values match bit for bit)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6
# SIGKILL inside TensorFlow's own state-file update: ckpt-N data + index are on disk, `checkpoint` still names N-1.
KILL_IN_SAVE = """
import os, signal, sys
from tensorflow.python.checkpoint import checkpoint_management as cm
original = cm.update_checkpoint_state_internal
def killer(save_dir, model_checkpoint_path, *a, **k):
    if model_checkpoint_path.endswith("ckpt-3"):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(save_dir, model_checkpoint_path, *a, **k)
cm.update_checkpoint_state_internal = killer
from absl import app
from litedepth_tf import train
train.define_flags()
sys.argv = ["train"] + sys.argv[1:]
app.run(train.main)
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from litedepth_tf.data.synthetic import generate

    root = tmp_path_factory.mktemp("kill_data")
    generate(str(root), 6, 1, seed=4, workers=1, progress=False)
    return str(root)


def _cmd(data_root, run_dir, *extra, script=None):
    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "litedepth_tf.train"]
    return head + [f"--data_root={data_root}", f"--run_dir={run_dir}", f"--steps={STEPS}", "--batch_size=2",
                   "--crop_sizes=240x384", "--val_split=", "--log_every=1", "--image_every=0", "--ckpt_every=1",
                   "--warmup_steps=1", "--lr=1e-3", "--min_lr=1e-4", "--seed=0", "--deterministic",
                   "--precise_bn_batches=0", "--min_free_mb=1", *extra]


def _env():
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
                LITEDEPTH_NO_PROGRESS="1")


def _run(cmd):
    r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _state(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt"))
    reader = tf.train.load_checkpoint(path)
    names = [n for n in reader.get_variable_to_shape_map()
             if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter", "data_iterator"))]
    return path, {n: reader.get_tensor(n) for n in names}


def _listed_checkpoints_readable(run_dir):
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "ckpt"))
    for path in state.all_model_checkpoint_paths:
        tf.train.load_checkpoint(path).get_variable_to_shape_map()  # raises if unreadable
    return list(state.all_model_checkpoint_paths)


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("kill_ref"))
    _run(_cmd(data_root, run_dir))
    return _state(run_dir)


def _assert_same(state, reference):
    path, values = state
    ref_path, ref = reference
    assert values.keys() == ref.keys()
    assert values["step/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS
    assert values["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS
    assert sum(n.startswith("weighting/sigma_") for n in values) == 4
    for name in ref:
        np.testing.assert_allclose(values[name], ref[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_kill_at_a_random_step_then_resume_equals_uninterrupted(data_root, tmp_path, reference):
    run_dir = str(tmp_path / "run")
    kill_after = random.Random(7).randint(2, STEPS - 2)  # a checkpoint exists every step
    p = subprocess.Popen(_cmd(data_root, run_dir), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpt_dir = os.path.join(run_dir, "ckpt")
    while time.time() < deadline and p.poll() is None:
        latest = tf.train.latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
        if latest and int(latest.rsplit("-", 1)[1]) >= kill_after:
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_at = int(tf.train.latest_checkpoint(ckpt_dir).rsplit("-", 1)[1])
    assert kill_after <= killed_at < STEPS
    _listed_checkpoints_readable(run_dir)
    r = _run(_cmd(data_root, run_dir, "--resume"))
    assert f"done: {STEPS} steps" in r.stdout
    _listed_checkpoints_readable(run_dir)
    _assert_same(_state(run_dir), reference)


def test_kill_while_writing_a_checkpoint_resumes_from_the_last_complete_one(data_root, tmp_path, reference):
    run_dir = str(tmp_path / "run")
    r = subprocess.run(_cmd(data_root, run_dir, script=KILL_IN_SAVE), cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    ckpt_dir = os.path.join(run_dir, "ckpt")
    assert os.path.exists(os.path.join(ckpt_dir, "ckpt-3.index"))  # written, but never made the latest
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-2")
    assert _listed_checkpoints_readable(run_dir)[-1].endswith("ckpt-2")
    r = _run(_cmd(data_root, run_dir, "--resume"))
    assert f"done: {STEPS} steps" in r.stdout
    _assert_same(_state(run_dir), reference)
