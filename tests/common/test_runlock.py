"""One run per folder (`litedepth_tf.common.runlock`): a live holder refuses a second run, naming its pid, host and
start time; a lock left by a process that died (no flock held any more) is taken over with one note; the lock is
removed at release; on a file system without flock, the recorded pid decides.

The live holder is another process (a small Python child that takes the lock and waits), as in real use; a dead
holder is a child that took the lock and exited without releasing it (os._exit: no cleanup, as after kill -9).
The `train` command refusing a held --run_dir before any work: tests/e2e/test_faults.py."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from litedepth_tf.common import cli
from litedepth_tf.common.runlock import LOCK_NAME, RunLock, RunLockedError
from tests.helpers import REPO

HOLD = """
import os, sys, time
from litedepth_tf.common.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
if sys.argv[2] == "die":
    os._exit(0)  # no release: the file stays, the flock goes with the process
time.sleep(120)
"""


def _holder(folder, mode):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.fixture
def live_holder(tmp_path):
    p = _holder(tmp_path, "hold")
    yield p
    p.kill()
    p.wait()


def test_a_live_holder_refuses_a_second_run_naming_it(tmp_path, live_holder):
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert record["pid"] == live_holder.pid and record["host"] == socket.gethostname() and record["started"]
    with pytest.raises(RunLockedError) as err:
        RunLock(tmp_path).acquire()
    msg = str(err.value)
    assert isinstance(err.value, cli.InputError) and "\n" not in msg
    assert f"--run_dir {tmp_path} is in use by another run: pid {live_holder.pid} on host {socket.gethostname()}" \
        in msg and str(tmp_path / LOCK_NAME) in msg, msg
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record  # untouched


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path, caplog):
    dead = _holder(tmp_path, "die")
    dead.wait()
    assert (tmp_path / LOCK_NAME).exists()
    with caplog.at_level(logging.WARNING, logger="litedepth_tf.common.runlock"):
        lock = RunLock(tmp_path).acquire()
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and f"pid {dead.pid} on host" in notes[0] and "no longer running" in notes[0], notes
    assert lock.took_over["pid"] == dead.pid
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()} "):  # now held: refused to anyone else
        RunLock(tmp_path).acquire()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_copied_lock_of_another_machine_is_taken_over(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "other-machine", "started": "earlier"}))
    with caplog.at_level(logging.WARNING, logger="litedepth_tf.common.runlock"), RunLock(tmp_path) as lock:
        assert lock.took_over["host"] == "other-machine"
    assert "ran on another machine" in caplog.text and not (tmp_path / LOCK_NAME).exists()


def test_release_removes_the_lock_and_a_new_run_takes_it_silently(tmp_path, caplog):
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()
    assert os.listdir(tmp_path) == []
    with caplog.at_level(logging.WARNING, logger="litedepth_tf.common.runlock"), RunLock(tmp_path) as lock:
        assert lock.took_over is None
    assert not caplog.records


def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))  # alive
    with pytest.raises(RunLockedError, match="has no file locks"):
        RunLock(tmp_path).acquire()
    path.write_text(json.dumps({"pid": 1, "host": "other-machine", "started": "now"}))  # cannot be checked
    with pytest.raises(RunLockedError, match="other-machine"):
        RunLock(tmp_path).acquire()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "started": "then"}))
    with RunLock(tmp_path) as lock:  # a dead pid on this host: taken over
        assert lock.took_over["pid"] == int(gone.stdout)
