"""`python -m litedepth_tf.train` under the faults of real machines (the kill -9s and the SIGTERM are in
test_kill_resume.py, on one chain of processes):

* the newest checkpoint damaged (a data file cut short, as by a partial copy of the run folder): `--resume` names
  it in one warning, resumes from the newest intact one, and the run ends equal BIT FOR BIT to the uninterrupted
  run (tests/e2e/conftest.py's reference, the same flags and --deterministic; why exact: test_kill_resume.py);
* no intact checkpoint: one line naming the folder, exit 2;
* a second training into a --run_dir that a live process holds: refused before any work, naming that process;
* a real full file system (a tmpfs of a few MB, mounted in a private mount namespace: `unshare -m`, or `-rm` as a
  normal user) filling up at a checkpoint: one line naming the checkpoint, the error and the last complete
  checkpoint, exit 2, no traceback, nothing partial left, the last complete checkpoint intact. Skipped, with the
  reason, where no tmpfs can be mounted.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from litedepth_tf import train
from litedepth_tf.training.checkpoints import check_checkpoint
from tests.common.test_runlock import _holder
from tests.e2e.test_kill_resume import STEPS, _cmd, _env, _h5, _latest, _resumed_from, _scalars, _tensors
from tests.helpers import REPO, call_main


def _copy_of_reference(resume_reference, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(resume_reference["run_dir"], run_dir)
    return run_dir


def test_a_damaged_newest_checkpoint_is_skipped_and_the_run_equals_the_uninterrupted_one(resume_data,
                                                                                         resume_reference, tmp_path):
    run_dir = _copy_of_reference(resume_reference, tmp_path)
    ckpt = os.path.join(run_dir, "ckpt")
    assert _latest(run_dir)[1] == STEPS
    data = os.path.join(ckpt, f"ckpt-{STEPS}.data-00000-of-00001")
    os.truncate(data, os.path.getsize(data) // 3)  # what an interrupted copy leaves
    r = subprocess.run(_cmd(resume_data, run_dir, resume=True), cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    warnings = [ln for ln in r.stderr.splitlines() if "damaged checkpoint" in ln]
    assert len(warnings) == 1, r.stderr[-4000:]
    assert f"ckpt-{STEPS} (ckpt-{STEPS}.data-00000-of-00001: Read less bytes than requested" in warnings[0]
    assert f"ckpt-{STEPS - 1} (step {STEPS - 1})" in warnings[0] and ckpt in warnings[0], warnings[0]
    assert _resumed_from(r.stderr) == (STEPS - 1, STEPS - 1) and f"done: {STEPS} steps" in r.stdout
    # it trained the last step again: the same checkpoint, weights and scalars as the run that was never damaged
    path, latest = _latest(run_dir)
    assert latest == STEPS and check_checkpoint(path) is None
    got, ref = _tensors(path), resume_reference["tensors"]
    assert got.keys() == ref.keys()
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    last = _h5(os.path.join(run_dir, "last.weights.h5"))
    for name in resume_reference["last"]:
        np.testing.assert_array_equal(last[name], resume_reference["last"][name], err_msg=name)
    scalars, ref_scalars = _scalars(run_dir), resume_reference["scalars"]
    for tag in [t for t in ref_scalars if t == "lr" or t.startswith(("sigma/", "loss/"))]:
        values = scalars[tag][STEPS]  # the reference's own, and the resumed run's
        assert len(values) == 2 and values == ref_scalars[tag][STEPS] * 2, (tag, values)
    assert not os.path.exists(os.path.join(run_dir, "train.lock"))


def _train_args(data_root, run_dir, *extra):
    return (f"--data_root={data_root}", f"--run_dir={run_dir}", "--steps=2", "--batch_size=2", "--crop_sizes=240x384",
            "--val_split=", "--image_every=0", "--precise_bn_batches=0", "--min_free_mb=1", *extra)


def test_no_intact_checkpoint_is_one_line_and_exit_2(resume_data, resume_reference, tmp_path, capsys):
    run_dir = _copy_of_reference(resume_reference, tmp_path)
    ckpt = os.path.join(run_dir, "ckpt")
    for step in (STEPS - 1, STEPS):
        with open(os.path.join(ckpt, f"ckpt-{step}.data-00000-of-00001"), "r+b") as f:
            f.write(np.random.default_rng(step).bytes(4096))  # a disk error: random bytes over the start
    rc = call_main(train, *_train_args(resume_data, run_dir, "--resume"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"error: --resume: no intact checkpoint in {ckpt}: "), err[-3:]
    assert f"ckpt-{STEPS} (" in err[-1] and f"ckpt-{STEPS - 1} (" in err[-1] and "Traceback" not in "\n".join(err)
    assert not os.path.exists(os.path.join(run_dir, "train.lock"))


def test_a_second_train_into_a_held_run_dir_refuses_before_any_work(resume_data, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir, "hold")  # another live process holds the folder
    work = []
    monkeypatch.setattr("litedepth_tf.models.presets.get_builder", lambda *a, **k: work.append("model"))
    try:
        rc = call_main(train, *_train_args(resume_data, run_dir))
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and not work, err
    assert err[0].startswith(f"error: --run_dir {run_dir} is in use by another run: pid {holder.pid} on host "), err
    assert sorted(os.listdir(run_dir)) == ["train.lock"]  # nothing written (not even flags.txt)


def _mount_command():
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


@pytest.fixture
def small_fs(tmp_path):
    """A command prefix that runs `sh -c SCRIPT` with a 9 MiB tmpfs mounted at $MNT, in a mount namespace of its
    own (nothing outside sees the mount); skips the test if it cannot be mounted here."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not shutil.which("unshare"):
        pytest.skip("no `unshare` to mount a small tmpfs in a private mount namespace")
    probe = subprocess.run(_mount_command() + ["sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mnt}"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({' '.join(_mount_command())}: {probe.stderr.strip()[:200]})")
    return mnt


def test_a_real_full_file_system_ends_training_with_one_line(resume_data, tmp_path, small_fs):
    """9 MiB: step 1 writes ckpt-1 (4.8 MB) and last.weights.h5 (1.9 MB); step 2's checkpoint does not fit."""
    out = tmp_path / "after"
    args = " ".join(f"'{a}'" for a in _train_args(resume_data, f"{small_fs}/run", "--steps=3", "--ckpt_every=1",
                                                  "--keep_checkpoints=1", "--log_every=1"))
    script = (f"mount -t tmpfs -o size=9m tmpfs {small_fs} || exit 90\n"
              f"{sys.executable} -m litedepth_tf.train {args}; rc=$?\n"
              f"df -k {small_fs} | tail -1 >&2; cp -a {small_fs}/run {out}; exit $rc\n")
    r = subprocess.run(_mount_command() + ["sh", "-c", script], cwd=REPO, env=_env(), capture_output=True, text=True,
                       timeout=600)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2, r.stderr[-4000:]
    assert "Traceback" not in r.stderr and len(errors) == 1, r.stderr[-4000:]
    ckpt = f"{small_fs}/run/ckpt"
    assert errors[0] == (f"error: cannot write checkpoint {ckpt}/ckpt-2: No space left on device; last complete "
                         f"checkpoint: step 1 ({ckpt}/ckpt-1); continue with --resume once the file can be written")
    # on the full file system: ckpt-1 listed and whole, nothing of ckpt-2, no temp file, the lock released
    files = sorted(os.path.relpath(os.path.join(d, f), out) for d, ds, fs in os.walk(out) for f in fs + ds)
    assert [f for f in files if f.startswith("ckpt/")] == ["ckpt/checkpoint", "ckpt/ckpt-1.data-00000-of-00001",
                                                         "ckpt/ckpt-1.index"], files
    assert not [f for f in files if os.path.basename(f).startswith(".")] and "train.lock" not in files, files
    assert check_checkpoint(str(out / "ckpt" / "ckpt-1")) is None
    assert _h5(str(out / "last.weights.h5"))  # step 1's, whole
    assert glob.glob(str(out / "events.out.tfevents.*"))
