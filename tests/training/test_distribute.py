"""--strategy=multiworker: two local worker processes (TF_CONFIG on 127.0.0.1 free ports) train a few steps with
`python -m litedepth_tf.train` and end with identical weights (each worker's final checkpoint compared)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, command_env, synthetic_root

STEPS = 3


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))  # loopback only
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "mw_data", 4, 1, seed=2)


def test_two_workers_end_with_identical_weights(data_root, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = command_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                          CUDA_VISIBLE_DEVICES="")
        cmd = [sys.executable, "-m", "litedepth_tf.train", f"--data_root={data_root}", f"--run_dir={tmp_path}/w{i}",
               "--strategy=multiworker", f"--steps={STEPS}", "--batch_size=4", "--crop_sizes=240x384",
               "--val_split=", "--log_every=1", "--image_every=0", "--ckpt_every=0", "--warmup_steps=1",
               "--lr=1e-3", "--min_lr=1e-4", "--seed=0"]
        # output to files, not pipes: a worker blocked on a full pipe would stall the collective ops of both
        log = open(tmp_path / f"w{i}.log", "w")
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
        log.close()
    for p in procs:
        try:
            p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    outs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"worker {i} failed:\n{out[-4000:]}"
    # worker 0 is the chief (run_dir/ckpt); worker 1 saves into its own run_dir/.worker1
    paths = [tf.train.latest_checkpoint(os.path.join(tmp_path, "w0", "ckpt")),
             tf.train.latest_checkpoint(os.path.join(tmp_path, "w1", ".worker1"))]
    assert all(paths), (paths, outs[0][-2000:])
    weights = []
    for path in paths:
        reader = tf.train.load_checkpoint(path)
        # every variable (tf.train.Checkpoint files a trainable weight once, under optimizer/_trainable_variables,
        # hence "model/" alone holds only the BatchNorm statistics)
        names = sorted(n for n in reader.get_variable_to_shape_map()
                       if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter", "data_iterator")))
        weights.append({n: reader.get_tensor(n) for n in names})
        assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == STEPS
    # model weights + BatchNorm statistics + loss sigmas + optimizer slots and iterations + counters
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 400, len(weights[0])
    assert sum(n.startswith("weighting/sigma_") for n in weights[0]) == 4
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)
    assert os.path.isfile(os.path.join(tmp_path, "w0", "last.weights.h5"))
    assert not os.path.exists(os.path.join(tmp_path, "w1", "last.weights.h5"))  # only the chief exports
    iterations = [n for n in weights[0] if n.startswith("optimizer/") and "iteration" in n]
    assert iterations and all(weights[0][n] == STEPS for n in iterations), iterations  # every step was applied
