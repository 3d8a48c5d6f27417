"""--deterministic (what flags/demo.cfg sets): the same command run twice gives bit-identical weights and logged
losses, with the demo's loss and optimizer flags. Separate processes: op determinism is process-wide in TF."""

import os
import sys

import h5py
import numpy as np
import pytest

from litedepth_tf.training.tensorboard import read_events
from tests.helpers import run_command, synthetic_root



@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "repro_data", 4, 1, seed=6)


def _train(data_root, run_dir):
    cmd = [sys.executable, "-m", "litedepth_tf.train", f"--data_root={data_root}", f"--run_dir={run_dir}",
           "--steps=4", "--batch_size=2", "--crop_sizes=240x384,480x640", "--val_split=", "--log_every=1",
           "--image_every=0", "--ckpt_every=0", "--warmup_steps=1", "--seed=3", "--deterministic",
           "--cache_in_memory", "--depth_stride=2", "--si_per_image", "--adam_epsilon=1e-6", "--min_lr=1e-4",
           "--precise_bn_batches=1", "--min_free_mb=1"]
    r = run_command(cmd[1:], timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    with h5py.File(os.path.join(run_dir, "last.weights.h5"), "r") as f:
        weights = {}
        f.visititems(lambda k, v: weights.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return weights, read_events(run_dir)


def test_deterministic_runs_are_bit_identical(data_root, tmp_path):
    w1, s1 = _train(data_root, str(tmp_path / "a"))
    w2, s2 = _train(data_root, str(tmp_path / "b"))
    assert len(w1) > 50 and sorted(w1) == sorted(w2)
    for name in w1:
        np.testing.assert_array_equal(w1[name], w2[name], err_msg=name)
    for tag in ("loss/si", "loss/vnl", "loss/loss", "grad_norm"):
        assert [step for step, _ in s1[tag]] == [1, 2, 3, 4] and s1[tag] == s2[tag], tag
    assert len({v for _, v in s1["loss/si"]}) == 4  # it trained: the loss changed every step
