"""Presets as typed records (litedepth_tf.models.presets) and the preset a run remembers: read from its
flags.txt exactly as train resolves --model and --decoder, an explicit preset that contradicts it refused."""

import os

import pytest
from absl import flags

from litedepth_tf import train
from litedepth_tf.common.cli import InputError
from litedepth_tf.models import presets
from tests.helpers import run_command


def test_records_bind_their_builder_and_arguments():
    p = presets.get_preset("student_80m")
    assert (p.builder, dict(p.kwargs), p.max_depth, p.family) == ("litedepth_tf.models.student:build_student",
                                                                  {"max_depth": 80.0}, 80.0, "student")
    assert presets.build_model("student_80m").depth_range == 80.0 == p.max_depth
    assert presets.get_preset("student").max_depth == presets.build_model("student").depth_range
    assert presets.get_preset("teacher_swin_base").kwargs["preset"] == "base"
    assert {p.family for p in presets.PRESETS.values()} == {"student", "teacher"}
    assert all(p.description and callable(presets.resolve(p)) for p in presets.PRESETS.values())
    with pytest.raises(TypeError):
        p.kwargs["max_depth"] = 10.0  # records are read-only
    with pytest.raises(InputError, match="Unknown model 'nope'; choose one of"):
        presets.get_preset("nope")


def test_importing_the_presets_imports_no_model():
    out = run_command(["-c", "import sys, litedepth_tf.models.presets as p; p.get_preset('teacher_swin_large'); "
                             "print(sorted(m for m in ('tensorflow', 'keras', 'litedepth_tf.models.student') "
                             "if m in sys.modules))"])
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


@pytest.mark.parametrize("argv", [[], ["--decoder=conv3x3"], ["--decoder=conv1x1"], ["--model=student_80m"],
                                  ["--model=teacher_swin_micro"]])
def test_the_run_preset_is_what_train_built(tmp_path, argv):
    """flags.txt as train writes it (every resolved flag), read back: the preset train's model_name chose."""
    fv = train.define_flags(flags.FlagValues())
    fv(["train", "--data_root=d", "--run_dir=r", "--steps=5", *argv])
    (tmp_path / "flags.txt").write_text(fv.flags_into_string())
    weights = str(tmp_path / "best.weights.h5")
    assert presets.run_preset(weights) == train.model_name(fv)
    assert presets.preset_for_weights(weights) == train.model_name(fv)


def test_weights_outside_a_run_and_contradictions(tmp_path):
    weights = str(tmp_path / "w.weights.h5")
    assert presets.run_preset(weights) is None and presets.preset_for_weights(weights) == "student"
    assert presets.preset_for_weights(weights, "student_conv1x1") == "student_conv1x1"
    assert presets.preset_for_weights(None, "student_80m") == "student_80m"
    (tmp_path / "flags.txt").write_text("--steps=10\n--lr=0.001\n")  # a flags.txt that names no model: not a run
    assert presets.run_preset(weights) is None
    (tmp_path / "flags.txt").write_text("--model=student\n--decoder=conv3x3\n")
    assert presets.preset_for_weights(weights, "student_conv3x3") == "student_conv3x3"
    with pytest.raises(InputError) as err:
        presets.preset_for_weights(weights, "student")
    assert str(err.value) == (f"--model=student contradicts the run of {weights}: {tmp_path}/flags.txt trained "
                              "student_conv3x3 (leave --model out to use it)")
    (tmp_path / "flags.txt").write_text("--model=student_9000m\n")
    with pytest.raises(InputError, match=f"{tmp_path}{os.sep}flags.txt: Unknown model 'student_9000m'"):
        presets.preset_for_weights(weights)
