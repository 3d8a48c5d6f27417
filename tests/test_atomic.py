"""Atomic writes (issue 7 item 2): a process SIGKILLed in the middle of writing an output leaves the previous
complete file (or nothing), never a truncated one. Every user-facing output goes through litedepth_tf.fsutil
(`.tflite` exports via export.export_tflite, evaluation / benchmark / report JSON, predicted PNGs, weights,
flags.txt), so the kill is injected there: the temp file is cut to half its size, then the process kills itself
before the rename, exactly what a crash during the write looks like on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRASH_MID_WRITE = """
import os, signal, sys
from litedepth_tf import fsutil
real_fsync = os.fsync
def crash(fd):  # called on the finished temp file just before the rename
    size = os.fstat(fd).st_size
    os.ftruncate(fd, size // 2)
    os.kill(os.getpid(), signal.SIGKILL)
os.fsync = crash
kind, path = sys.argv[1], sys.argv[2]
if kind == "bytes":
    fsutil.atomic_write_bytes(path, b"NEW" * 100000)
elif kind == "json":
    fsutil.atomic_write_json(path, {"metrics": {"si_rmse": 0.1}, "pad": "x" * 100000})
elif kind == "weights":
    import keras
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64)])
    fsutil.atomic_save_weights(m, path)
"""


@pytest.mark.parametrize("kind,name", [("bytes", "model.tflite"), ("json", "eval.json"),
                                       ("weights", "best.weights.h5"), ("bytes", "depth.png")])
def test_kill_mid_write_keeps_the_old_file(tmp_path, kind, name):
    dest = tmp_path / name
    old = b"OLD complete file\n"
    dest.write_bytes(old)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-c", CRASH_MID_WRITE, kind, str(dest)], env=env, capture_output=True,
                       timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()[-2000:]
    assert dest.read_bytes() == old  # the old file, whole
    leftovers = [p for p in os.listdir(tmp_path) if p != name]
    assert all(p.startswith("." + name + ".") for p in leftovers), leftovers  # hidden temp names only


def test_clean_write_replaces_and_leaves_no_temp(tmp_path):
    from litedepth_tf import fsutil

    dest = tmp_path / "eval.json"
    dest.write_text("old")
    fsutil.atomic_write_json(dest, {"a": 1})
    assert json.loads(dest.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["eval.json"]
