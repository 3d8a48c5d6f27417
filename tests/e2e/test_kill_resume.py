"""kill -9 during training, on one run killed four times and preempted once, then resumed to the end:

1. from outside, at a random step (seeded), while `python -m litedepth_tf.train` runs;
2. inside TensorFlow's checkpoint write: the shard `ckpt-K_temp/part-*.data` written (and cut to half), the final
   `ckpt-K.index` not yet (tests/crashrun.py `merge:2`);
3. inside CheckpointManager.save after `ckpt-K` is complete and named and the oldest checkpoint deleted, before the
   state file drops that one (`state:2`): the one window where the state file lists a checkpoint that is gone
   (TensorFlow's order: name the new one first, then delete, then rewrite the list);
and, between 3 and 4, a SIGTERM (a preemption; `signal:SIGTERM:1`) after the first step of a process that saves no
checkpoint of its own (--ckpt_every larger than the run): it writes one at that step and exits 143, and the next
--resume starts there;
4. at the last step, while `last.weights.h5` is written (after the final checkpoint; `replace:last.weights.h5`).

Every process after a kill -9 finds the killed one's `train.lock` (nobody holds its flock any more) and takes it
over with a note naming the killed pid; every process that ends, preempted or done, removes its own.

After every kill: every checkpoint the state file lists is readable (every tensor) or, in window 3 only, the oldest
is deleted whole (no file of it left) and dropped from the list by the next save; nothing half-written is ever
listed; the next `--resume` starts from the newest complete checkpoint (its log says which). At the end the run equals an
uninterrupted run (`--deterministic`) BIT FOR BIT: every checkpoint tensor (weights, BatchNorm statistics, Adam
slots and iterations, loss sigmas, step and skip counters, data-iterator position), `last.weights.h5`, and every
TensorBoard scalar (loss terms, sigmas, learning rate) at every step, whichever process logged it. Exact equality
is the right tolerance here: a checkpoint stores the float32 bits, the tf.data iterator resumes at the same
element, per-step randomness is seeded from (seed, step), and --deterministic (op determinism, fixed data order)
makes the same ops on the same inputs give the same bits in a fresh process of the same binary on the same CPU.
"""

from __future__ import annotations

import glob
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, command_env

CRASHRUN = os.path.join(REPO, "tests", "e2e", "crashrun.py")
STEPS = 9
KILL_AFTER = random.Random(7).randint(1, 3)  # the random kill: once ckpt-KILL_AFTER exists, after a random delay
KILL_DELAY = random.Random(8).uniform(0.0, 0.3)


@pytest.fixture(scope="module")
def data_root(resume_data):  # tests/e2e/conftest.py: shared with tests/e2e/test_faults.py
    return resume_data


def _cmd(data_root, run_dir, resume=False, crash=None):
    head = [sys.executable, CRASHRUN, "-m"] if crash else [sys.executable, "-m"]
    return head + ["litedepth_tf.train", f"--data_root={data_root}", f"--run_dir={run_dir}", f"--steps={STEPS}",
                   "--batch_size=2", "--crop_sizes=240x384", "--val_split=", "--log_every=1", "--image_every=0",
                   "--ckpt_every=1", "--keep_checkpoints=2", "--warmup_steps=2", "--lr=1e-3", "--min_lr=1e-4", "--seed=0",
                   "--deterministic", "--precise_bn_batches=0", "--min_free_mb=1"] + (["--resume"] if resume else [])


def _env(crash=None):
    env = command_env()
    env.pop("LITEDEPTH_CRASH", None)
    if crash:
        env["LITEDEPTH_CRASH"] = crash
    return env


def _run(data_root, run_dir, resume=True, crash=None):
    r = subprocess.run(_cmd(data_root, run_dir, resume, crash), cwd=REPO, env=_env(crash), capture_output=True,
                       text=True, timeout=600)
    if crash:
        assert r.returncode == -signal.SIGKILL, f"{crash}: not killed (rc {r.returncode})\n{r.stderr[-3000:]}"
    else:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _latest(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt"))
    return (path, int(path.rsplit("-", 1)[1])) if path else (None, 0)


def _tensors(path):
    """Every tensor of a checkpoint (raises if any cannot be read); the data iterator's state is a DT_VARIANT
    that NumPy cannot hold: present as its name only (its position is checked by the data the run trained on)."""
    reader = tf.train.load_checkpoint(path)
    return {n: None if dtype == tf.variant else reader.get_tensor(n)
            for n, dtype in reader.get_variable_to_dtype_map().items()
            if not n.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"))}


def _listed_checkpoints(run_dir):
    """(listed numbers, listed numbers with no file left) from the `checkpoint` state file; every listed checkpoint
    that has files reads back completely (raises otherwise), the newest one always."""
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "ckpt"))
    listed = [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths]
    gone = [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths if not glob.glob(p + ".*")]
    for path in state.all_model_checkpoint_paths:
        if int(path.rsplit("-", 1)[1]) not in gone:
            assert _tensors(path)
    assert listed[-1] not in gone
    return listed, gone


def _resumed_from(stderr):
    m = re.search(r"resumed from (\S+) at step (\d+)", stderr)
    assert m, "no 'resumed from' line:\n" + stderr[-3000:]
    return int(m.group(1).rsplit("-", 1)[1]), int(m.group(2))


def _scalars(run_dir):
    """{tag: {step: [value, ...]}} over every TensorBoard events file in run_dir (one per process); a record cut
    by a kill ends that file."""
    out = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                for v in event.summary.value:
                    value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                    out.setdefault(v.tag, {}).setdefault(event.step, []).append(value)
        except tf.errors.DataLossError:
            pass
    return out


def _files(run_dir):
    """Every file under run_dir (relative paths): what a kill left on disk, before the next process touches it."""
    return sorted(os.path.relpath(os.path.join(d, f), run_dir) for d, _, fs in os.walk(run_dir) for f in fs)


def _h5(path):
    out = {}
    with h5py.File(path, "r") as f:  # raises on a truncated file
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def reference(resume_reference):  # the uninterrupted run (tests/e2e/conftest.py)
    return resume_reference


class _Chain:
    """The killed run, one stage per process; a test asks for the stages it needs (run once, in order)."""

    STAGES = ("random_kill", "merge_kill", "sweep_kill", "preempt", "last_weights_kill", "final_resume")

    def __init__(self, data_root, run_dir):
        self.data_root, self.run_dir, self.obs = data_root, run_dir, {}

    def upto(self, stage):
        for name in self.STAGES[:self.STAGES.index(stage) + 1]:
            if name not in self.obs:
                before = _latest(self.run_dir)[1]
                self.obs[name] = dict(getattr(self, "_" + name)(before), before=before)
        return self.obs

    def _random_kill(self, before):
        p = subprocess.Popen(_cmd(self.data_root, self.run_dir), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and p.poll() is None and _latest(self.run_dir)[1] < KILL_AFTER:
                time.sleep(0.02)
            time.sleep(KILL_DELAY)
            assert p.poll() is None, f"the run ended (rc {p.returncode}) before it could be killed"
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        return dict(rc=p.returncode, pid=p.pid, latest=_latest(self.run_dir)[1],
                    listed=_listed_checkpoints(self.run_dir), files=_files(self.run_dir))

    def _killed(self, crash):
        r = _run(self.data_root, self.run_dir, crash=crash)
        last = os.path.join(self.run_dir, "last.weights.h5")
        return dict(stderr=r.stderr, latest=_latest(self.run_dir)[1], listed=_listed_checkpoints(self.run_dir),
                    files=_files(self.run_dir), last_readable=bool(_h5(last)) if os.path.exists(last) else None)

    def _merge_kill(self, before):
        return self._killed("merge:2")  # resumed at `before`, saves before+1, killed writing before+2

    def _sweep_kill(self, before):
        return self._killed("state:2")  # the first save's second state-file update (after its sweep)

    def _preempt(self, before):
        crash = "signal:SIGTERM:1"
        cmd = _cmd(self.data_root, self.run_dir, True, crash) + [f"--ckpt_every={10 * STEPS}"]  # no save of its own
        r = subprocess.run(cmd, cwd=REPO, env=_env(crash), capture_output=True, text=True, timeout=600)
        return dict(rc=r.returncode, stderr=r.stderr, stdout=r.stdout, latest=_latest(self.run_dir)[1],
                    listed=_listed_checkpoints(self.run_dir), files=_files(self.run_dir))

    def _last_weights_kill(self, before):
        assert before < STEPS
        # one last.weights.h5 per step (ckpt_every=1): the (STEPS - before)-th is the final step's
        return self._killed(f"replace:last.weights.h5:{STEPS - before}")

    def _final_resume(self, before):
        r = _run(self.data_root, self.run_dir)
        return dict(stderr=r.stderr, stdout=r.stdout, latest=_latest(self.run_dir)[1],
                    listed=_listed_checkpoints(self.run_dir))


@pytest.fixture(scope="module")
def chain(data_root, tmp_path_factory):
    return _Chain(data_root, str(tmp_path_factory.mktemp("kill_run")))


def test_kill_at_a_random_step_then_resume_from_the_newest_checkpoint(chain):
    obs = chain.upto("merge_kill")
    killed = obs["random_kill"]
    assert killed["rc"] == -signal.SIGKILL
    assert KILL_AFTER <= killed["latest"] <= STEPS - 4, killed  # room left for the stages below
    assert killed["listed"][0][-1] == killed["latest"]
    assert _resumed_from(obs["merge_kill"]["stderr"]) == (killed["latest"], killed["latest"])


def test_the_lock_of_a_killed_run_is_taken_over_with_a_note_and_released_at_exit(chain):
    obs = chain.upto("final_resume")
    lock = os.path.join(chain.run_dir, "train.lock")
    assert "train.lock" in obs["random_kill"]["files"]  # kill -9: nothing removed it
    note = [ln for ln in obs["merge_kill"]["stderr"].splitlines() if "taking over the lock file" in ln]
    assert len(note) == 1 and lock in note[0] and f"pid {obs['random_kill']['pid']} " in note[0], note
    assert "no longer running" in note[0]
    for stage in ("merge_kill", "sweep_kill", "last_weights_kill"):  # each killed: its lock is left, taken over
        assert "train.lock" in obs[stage]["files"], stage
    assert "train.lock" not in obs["preempt"]["files"]  # ended (preempted): removed
    assert not os.path.exists(lock)  # the last process ended normally


def test_kill_inside_the_checkpoint_write_resumes_from_the_previous_checkpoint(chain):
    obs = chain.upto("sweep_kill")
    killed, k = obs["merge_kill"], obs["merge_kill"]["before"] + 2  # the checkpoint being written
    assert "inside the checkpoint merge" in killed["stderr"]
    assert killed["latest"] == k - 1 and killed["listed"] == ([k - 2, k - 1], [])
    files = killed["files"]
    assert not [f for f in files if f.startswith(f"ckpt/ckpt-{k}.")]
    assert [f for f in files if f.startswith(f"ckpt/ckpt-{k}_temp/part-") and ".data-" in f]  # half-written shard
    assert _resumed_from(obs["sweep_kill"]["stderr"]) == (k - 1, k - 1)


def test_kill_between_deleting_the_oldest_checkpoint_and_rewriting_the_list(chain):
    obs = chain.upto("last_weights_kill")
    killed, k = obs["sweep_kill"], obs["sweep_kill"]["before"] + 1  # the checkpoint just saved
    assert "before state file update 2" in killed["stderr"]
    assert not [f for f in killed["files"] if "_temp/" in f]  # the half-written shard of ckpt-k was replaced
    # ckpt-k is complete and named; ckpt-(k-2) was deleted whole (no file left) but is still listed
    assert killed["latest"] == k and killed["listed"] == ([k - 2, k - 1, k], [k - 2])
    assert _resumed_from(obs["preempt"]["stderr"]) == (k, k)
    assert obs["preempt"]["listed"][1] == []  # the next save dropped it from the list


def test_sigterm_writes_a_checkpoint_at_the_current_step_and_resume_continues_there(chain):
    obs = chain.upto("last_weights_kill")
    stopped, k = obs["preempt"], obs["preempt"]["before"] + 1  # one step after its resume
    assert stopped["rc"] == 128 + signal.SIGTERM, stopped["stderr"][-3000:]
    assert "crashrun: SIGTERM after training step 1" in stopped["stderr"]
    lines = [ln for ln in stopped["stderr"].splitlines() if ln.startswith("preempted")]
    ckpt = os.path.join(chain.run_dir, "ckpt", f"ckpt-{k}")
    assert lines == [f"preempted by SIGTERM at step {k} of {STEPS}: checkpoint {ckpt} written; continue with "
                     f"--resume"], stopped["stderr"][-3000:]
    assert "Traceback" not in stopped["stderr"] and "done:" not in stopped["stdout"]
    # its only checkpoint is the one the signal asked for (its --ckpt_every saves none), complete and listed
    assert stopped["latest"] == k and stopped["listed"] == ([k - 1, k], [])
    assert _resumed_from(obs["last_weights_kill"]["stderr"]) == (k, k)


def test_kill_while_writing_last_weights_at_the_final_step(chain):
    obs = chain.upto("final_resume")
    killed = obs["last_weights_kill"]
    assert "half-written temp file onto" in killed["stderr"] and killed["stderr"].strip().endswith("last.weights.h5")
    assert killed["latest"] == STEPS  # the final checkpoint is complete: it is written before last.weights.h5
    assert killed["last_readable"]  # the previous step's file, whole
    leftovers = [p for p in killed["files"] if "last.weights.h5" in p and p != "last.weights.h5"]
    assert leftovers and all(p.startswith(".last.weights.h5.") for p in leftovers)  # hidden temp only
    final = obs["final_resume"]
    assert _resumed_from(final["stderr"]) == (STEPS, STEPS)
    assert f"done: {STEPS} steps" in final["stdout"]


def test_killed_and_resumed_run_equals_the_uninterrupted_run_bit_for_bit(chain, reference):
    obs = chain.upto("final_resume")
    run_dir = chain.run_dir
    path, latest = _latest(run_dir)
    assert latest == STEPS
    got, ref = _tensors(path), reference["tensors"]
    assert got["step/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS
    assert got["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS
    assert sorted(n.split("/")[1] for n in got if n.startswith("weighting/")) == \
        ["sigma_grad", "sigma_robust", "sigma_si", "sigma_vnl"]
    assert any(n.startswith("data_iterator/") for n in got)
    assert got.keys() == ref.keys()
    for name in ref:  # exact: see the module docstring
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    # last.weights.h5 is the final state too (rewritten by the resume that found nothing left to train)
    last = _h5(os.path.join(run_dir, "last.weights.h5"))
    assert last.keys() == reference["last"].keys()
    for name in last:
        np.testing.assert_array_equal(last[name], reference["last"][name], err_msg=name)
    # every step's scalars (learning rate, sigmas, loss terms) are on disk and equal the uninterrupted run's,
    # including steps run twice (after the last checkpoint of a killed process, again by the resumed one)
    scalars, ref_scalars = _scalars(run_dir), reference["scalars"]
    for tag in [t for t in ref_scalars if t == "lr" or t.startswith(("sigma/", "loss/"))]:
        assert sorted(scalars[tag]) == list(range(1, STEPS + 1)), (tag, sorted(scalars[tag]))
        for step, values in scalars[tag].items():
            assert values == ref_scalars[tag][step] * len(values), (tag, step, values, ref_scalars[tag][step])
    lr = [ref_scalars["lr"][s][0] for s in range(1, STEPS + 1)]
    assert len(set(lr)) > 2  # the schedule moves, so a restarted schedule would show
    # nothing half-written is left where a checkpoint reader looks, and every checkpoint on disk reads back
    ckpt_dir = os.path.join(run_dir, "ckpt")
    assert not glob.glob(os.path.join(ckpt_dir, "*_temp"))
    for index in glob.glob(os.path.join(ckpt_dir, "ckpt-*.index")):
        assert _tensors(index[:-len(".index")])
    assert obs["final_resume"]["listed"] == ([STEPS - 1, STEPS], [])
