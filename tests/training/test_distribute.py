"""--strategy=multiworker: two local worker processes (TF_CONFIG on 127.0.0.1 free ports) train a few steps with
`python -m litedepth_tf.train`; a SIGTERM to one worker only stops both after the same step, each with its
checkpoint of that step, exit 143; the two checkpoints are identical (every variable compared)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, command_env, synthetic_root

CRASHRUN = os.path.join(REPO, "tests", "e2e", "crashrun.py")

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


def _two_workers(data_root, tmp_path, steps, crash=None):
    """Runs both workers to their end; `crash`: {worker index: LITEDEPTH_CRASH spec} (tests/e2e/crashrun.py).
    Returns ([returncode], [output])."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = command_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                          CUDA_VISIBLE_DEVICES="")
        env.pop("LITEDEPTH_CRASH", None)
        head = [sys.executable, "-m"]
        if crash and i in crash:
            env["LITEDEPTH_CRASH"], head = crash[i], [sys.executable, CRASHRUN, "-m"]
        cmd = head + ["litedepth_tf.train", f"--data_root={data_root}", f"--run_dir={tmp_path}/w{i}",
                      "--strategy=multiworker", f"--steps={steps}", "--batch_size=4", "--crop_sizes=240x384",
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
    return [p.returncode for p in procs], [(tmp_path / f"w{i}.log").read_text() for i in range(2)]


def _final_weights(tmp_path, steps, outs):
    """Each worker's newest checkpoint (every variable), after checking its step counter is `steps`."""
    paths = [tf.train.latest_checkpoint(os.path.join(tmp_path, "w0", "ckpt")),
             tf.train.latest_checkpoint(os.path.join(tmp_path, "w1", ".worker1"))]
    assert all(paths), (paths, outs[0][-2000:])
    weights = []
    for path in paths:
        reader = tf.train.load_checkpoint(path)
        names = sorted(n for n in reader.get_variable_to_shape_map()
                       if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter", "data_iterator")))
        weights.append({n: reader.get_tensor(n) for n in names})
        assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == steps
    return paths, weights


def test_sigterm_to_one_worker_stops_both_after_the_same_step_with_identical_weights(data_root, tmp_path):
    """Worker 1 alone gets SIGTERM after its step 2 of 3. The stop flag is all-reduced once per step, so the chief
    stops after step 2 too: both save that step (a collective save) and exit 143, and hold identical weights (the
    synchronised training of every step before). One run for both checks: a run of its own would double the cost."""
    rcs, outs = _two_workers(data_root, tmp_path, STEPS, crash={1: "signal:SIGTERM:2"})
    for i, (rc, out) in enumerate(zip(rcs, outs)):
        assert rc == 128 + signal.SIGTERM, f"worker {i} (rc {rc}):\n{out[-4000:]}"
        assert "Traceback" not in out, out[-4000:]
    assert "crashrun: SIGTERM after training step 2" in outs[1]
    stop = STEPS - 1
    # worker 0 is the chief (run_dir/ckpt); worker 1 saves into its own run_dir/.worker1. Every variable
    # (tf.train.Checkpoint files a trainable weight once, under optimizer/_trainable_variables, hence "model/" alone
    # holds only the BatchNorm statistics)
    paths, weights = _final_weights(tmp_path, stop, outs)
    lines = [[ln for ln in out.splitlines() if ln.startswith("preempted")] for out in outs]
    assert lines[0] == [f"preempted by SIGTERM (sent to replica 1) at step {stop} of {STEPS}: checkpoint {paths[0]} "
                        "written; continue with --resume"], outs[0][-3000:]
    assert lines[1] == [f"preempted by SIGTERM at step {stop} of {STEPS}: checkpoint {paths[1]} written; continue "
                        "with --resume"], outs[1][-3000:]
    # model weights + BatchNorm statistics + loss sigmas + optimizer slots and iterations + counters
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 400, len(weights[0])
    assert sum(n.startswith("weighting/sigma_") for n in weights[0]) == 4
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name], err_msg=name)
    assert os.path.isfile(os.path.join(tmp_path, "w0", "last.weights.h5"))
    assert not os.path.exists(os.path.join(tmp_path, "w1", "last.weights.h5"))  # only the chief exports
    iterations = [n for n in weights[0] if n.startswith("optimizer/") and "iteration" in n]
    assert iterations and all(weights[0][n] == stop for n in iterations), iterations  # every step was applied
