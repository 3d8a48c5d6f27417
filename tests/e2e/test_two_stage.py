"""The two-stage LiteDepth recipe through the real training CLI, at smoke-test size.

stage 1: the student alone -> teacher: Swin micro with AdamW -> stage 2: the student re-initialised from stage 1
(`--init_weights`) and trained with the structure-aware distillation loss against the frozen teacher
(`--teacher_weights`, `--teacher_preset=micro`). Flags are parsed by `train.define_flags` into a fresh FlagValues
and run with `train.run` (what `python -m litedepth_tf.train` does after parsing); the bad-input exit code and
message are checked on a real `python -m litedepth_tf.train` process.

Checked: stage 2 starts from exactly the stage-1 weights (captured right after loading, before the first update)
and then moves away from them; TensorBoard holds finite loss/distill_4, loss/distill_8, loss/distill_16 at every
logged step; the teacher's weights (BatchNorm statistics included) are unchanged by stage 2; a missing teacher file
is an error naming --teacher_weights (exit code 2, no traceback); teacher weights of the wrong preset are an error
naming the first mismatching variable; an empty --teacher_weights trains without distillation (the control run).

Tiny: 6 synthetic frames, R-crop 240x384 (-> 64x96 network input), batch 2, a few steps per stage.
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np
import pytest
from absl import flags

from tests.helpers import run_command, synthetic_root

STAGE2_STEPS = 3

pytestmark = pytest.mark.slow  # end-to-end CLI runs (~70 s on a 2-core CPU); still part of `make test`


def _flags(**kw):
    from litedepth_tf import train

    fv = train.define_flags(flags.FlagValues())
    args = dict(batch_size=2, crop_sizes="240x384", val_split="local_val", val_max_images=1, log_every=1,
                image_every=0, eval_every=0, ckpt_every=0, warmup_steps=1, precise_bn_batches=1, seed=0,
                min_free_mb=1) | kw
    fv(["train"] + [f"--{k}={v}" for k, v in args.items()])
    return fv


def _sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "two_stage_data", 6, 2, seed=5)


@pytest.fixture(scope="module")
def stage1(data_root, tmp_path_factory):
    """Stage 1: the student alone (flags/student.cfg's recipe, Adam)."""
    from litedepth_tf import train

    run_dir = str(tmp_path_factory.mktemp("stage1"))
    summary = train.run(_flags(data_root=data_root, run_dir=run_dir, model="student", steps=2, lr=1e-3,
                               min_lr=1e-4))
    assert summary["step"] == 2 and np.isfinite(summary["best_si_rmse"])
    return os.path.join(run_dir, "best.weights.h5")


@pytest.fixture(scope="module")
def teacher(data_root, tmp_path_factory):
    """The teacher: Swin micro, AdamW (flags/teacher.cfg's recipe)."""
    from litedepth_tf import train

    run_dir = str(tmp_path_factory.mktemp("teacher"))
    summary = train.run(_flags(data_root=data_root, run_dir=run_dir, model="teacher_swin_micro", steps=2,
                               optimizer="adamw", lr=2e-4, min_lr=5e-5, weight_decay=0.01, adam_epsilon=1e-8,
                               val_split=""))
    assert summary["step"] == 2
    return os.path.join(run_dir, "last.weights.h5")


@pytest.fixture(scope="module")
def stage2(data_root, stage1, teacher, tmp_path_factory):
    """Stage 2: the student from the stage-1 weights + distillation from the frozen teacher. Records the student's
    weights right after `--init_weights` was loaded and the teacher model the trainer used."""
    from litedepth_tf import train

    seen = {}
    real_load, real_teacher = train.load_weights, train.load_teacher_for_distillation

    def load_weights(model, path):
        real_load(model, path)
        seen["init_path"], seen["init"] = os.fspath(path), [w.copy() for w in model.get_weights()]
        seen["student"] = model

    def load_teacher(path, preset="tiny", **kw):
        seen["teacher"] = real_teacher(path, preset, **kw)
        return seen["teacher"]

    run_dir = str(tmp_path_factory.mktemp("stage2"))
    teacher_sha = _sha(teacher)
    mp = pytest.MonkeyPatch()
    mp.setattr(train, "load_weights", load_weights)
    mp.setattr(train, "load_teacher_for_distillation", load_teacher)
    try:
        summary = train.run(_flags(data_root=data_root, run_dir=run_dir, model="student", steps=STAGE2_STEPS,
                                   lr=1e-3, min_lr=2.5e-4, init_weights=stage1, teacher_weights=teacher,
                                   teacher_preset="micro", distill_weight=10))
    finally:
        mp.undo()
    assert _sha(teacher) == teacher_sha  # the teacher's file is only read
    return dict(seen, run_dir=run_dir, summary=summary)


def test_stage2_starts_from_stage1_weights_and_trains(stage1, stage2):
    from litedepth_tf.models.student import build_student

    assert stage2["init_path"] == stage1
    want = build_student(weights=stage1).get_weights()
    assert _same(stage2["init"], want)  # exactly stage 1, before any update
    assert stage2["summary"]["step"] == STAGE2_STEPS and stage2["summary"]["skipped_steps"] == 0
    after = build_student(weights=os.path.join(stage2["run_dir"], "last.weights.h5")).get_weights()
    assert not _same(after, want)  # ... and stage 2 did update the student
    assert np.isfinite(stage2["summary"]["best_si_rmse"])


def test_tensorboard_has_finite_distillation_terms_per_level(stage2):
    from litedepth_tf.training import tensorboard as tb

    events = tb.read_events(stage2["run_dir"])
    for level in ("4", "8", "16"):
        values = events.get(f"loss/distill_{level}")
        assert values, (level, sorted(events))
        assert [s for s, _ in values] == list(range(1, STAGE2_STEPS + 1)), values
        assert all(np.isfinite(v) and v >= 0 for _, v in values), values
        assert any(v > 0 for _, v in values), values  # a random-ish student does not match the teacher
    for tag in ("loss/si", "loss/loss", "val/si_rmse"):
        assert tag in events, (tag, sorted(events))


def test_teacher_is_frozen_by_stage2(teacher, stage2):
    from litedepth_tf.models.teacher import build_teacher

    used = stage2["teacher"]
    assert not used.trainable and not used.trainable_weights
    student_ids = {id(v) for v in stage2["student"].weights}
    assert not any(id(v) in student_ids for v in used.weights)
    fresh = build_teacher("micro", weights=teacher).get_weights()
    assert _same(used.get_weights(), fresh)  # every variable, BatchNorm moving statistics included


def test_empty_teacher_weights_trains_without_distillation(data_root, stage1, tmp_path):
    """The fair control of the demo: the same stage-2 flags with `--teacher_weights=` (empty)."""
    from litedepth_tf import train
    from litedepth_tf.training import tensorboard as tb

    run_dir = str(tmp_path / "control")
    train.run(_flags(data_root=data_root, run_dir=run_dir, model="student", steps=1, lr=1e-3, min_lr=2.5e-4,
                     init_weights=stage1, teacher_weights="", teacher_preset="micro", val_split="",
                     precise_bn_batches=0))
    events = tb.read_events(run_dir)
    assert "loss/si" in events and not any(t.startswith("loss/distill") for t in events), sorted(events)


def test_missing_teacher_file_is_an_error_naming_the_flag(data_root, stage1, tmp_path):
    missing = str(tmp_path / "no_such_teacher.weights.h5")
    cmd = [sys.executable, "-m", "litedepth_tf.train", f"--data_root={data_root}", f"--run_dir={tmp_path}/run",
           "--steps=1", "--batch_size=2", "--crop_sizes=240x384", "--val_split=", f"--init_weights={stage1}",
           f"--teacher_weights={missing}", "--teacher_preset=micro", "--min_free_mb=1"]
    proc = run_command(cmd[1:], timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "--teacher_weights" in proc.stderr and missing in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_teacher_of_the_wrong_preset_names_the_first_mismatching_variable(data_root, stage1, teacher, tmp_path):
    from litedepth_tf import train

    fv = _flags(data_root=data_root, run_dir=str(tmp_path / "run"), model="student", steps=1, val_split="",
                init_weights=stage1, teacher_weights=teacher, teacher_preset="tiny")
    with pytest.raises(ValueError, match="first mismatching variable") as err:
        train.run(fv)
    msg = str(err.value)
    assert teacher in msg and "wrong preset" in msg, msg
    # the first variable in model order: the patch embedding, 16 channels (micro) in the file, 96 (tiny) expected
    assert "'patch_embed/proj/kernel'" in msg and "(4, 4, 3, 16)" in msg and "(4, 4, 3, 96)" in msg, msg
