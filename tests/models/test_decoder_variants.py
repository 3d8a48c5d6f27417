"""The decoder kinds of Table 3 (mix, all 3x3, all 1x1): their parameter counts from the conv shapes, the kind read
back from a built model, and Keras vs TFLite parity of a non-default kind through the merged deploy view."""

from __future__ import annotations

import keras
import pytest

from litedepth_tf.models import presets
from litedepth_tf.models.decoder import DECODER_KERNELS, decoder_kind
from litedepth_tf.models.student import build_deploy_model, build_student
from litedepth_tf.tflite.parity import run_export_parity_test
from tests.helpers import make_depth_nontrivial, randomize_batchnorm

# (in, out) widths of the decoder convs: stride 32 (MobileNetV3-Small's 96 -> 72), 16 (72 up + 48 skip -> 24),
# 8 (24 + 24 -> 8), 4 (8 + 16 -> 24); the 1x1 depth head 24 -> 1.
WIDTHS = {"32": (96, 72), "16": (120, 24), "8": (48, 8), "4": (24, 24)}


def _expected_decoder_params(kind):
    total = 24 + 1  # depth head
    for (tag, (cin, cout)), k in zip(WIDTHS.items(), DECODER_KERNELS[kind]):
        total += k * k * cin * cout + cout
    return total


@pytest.mark.parametrize("name,kind", [("student", "mix"), ("student_conv3x3", "conv3x3"),
                                       ("student_conv1x1", "conv1x1")])
def test_parameter_counts(name, kind):
    model = presets.build_model(name)
    decoder = model.count_params() - model.get_layer("encoder").count_params()
    assert decoder == _expected_decoder_params(kind)
    assert decoder_kind(model) == kind
    assert presets.student_preset(kind) == name


def test_parameter_counts_order():
    # all 3x3 > mix > all 1x1: mix differs from 1x1 only in the stride-4 conv
    counts = {k: _expected_decoder_params(k) for k in DECODER_KERNELS}
    assert counts["conv3x3"] > counts["mix"] > counts["conv1x1"]
    assert counts["mix"] - counts["conv1x1"] == 8 * 24 * 24


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="decoder kind must be one of"):
        build_student(decoder="conv5x5")
    with pytest.raises(ValueError, match="no student preset"):
        presets.student_preset("conv5x5")


def test_conv3x3_merged_deploy_parity(tmp_path):
    keras.utils.set_random_seed(3)
    model = build_student(decoder="conv3x3")
    randomize_batchnorm(model, 3)
    make_depth_nontrivial(model)
    deploy = build_deploy_model(model, merge_normalization=True)
    merged = deploy.get_layer("student_merged")
    assert decoder_kind(merged) == "conv3x3"  # the deploy view follows the trained model
    report = run_export_parity_test(deploy, "fp32", tflite_path=str(tmp_path / "c3.tflite"))
    assert report.max_abs_diff < 1e-4


def test_the_sigmoid_head_preset_and_its_deploy_view():
    """train --head=sigmoid names student_sigmoid for evaluate / export; the merged deploy copy keeps the head."""
    from absl import flags

    from litedepth_tf import train
    from litedepth_tf.models.decoder import head_kind

    fv = train.define_flags(flags.FlagValues())
    fv(["train", "--data_root=d", "--run_dir=r", "--steps=1", "--head=sigmoid"])
    assert train.model_name(fv) == "student_sigmoid"
    model = presets.build_model("student_sigmoid")
    assert head_kind(model) == "sigmoid" and head_kind(presets.build_model("student")) == "relu"
    assert head_kind(build_deploy_model(model, merge_normalization=True).get_layer("student_merged")) == "sigmoid"
    bad = train.define_flags(flags.FlagValues())
    with pytest.raises(flags.IllegalFlagValueError, match="student_sigmoid"):
        bad(["train", "--data_root=d", "--run_dir=r", "--steps=1", "--head=sigmoid", "--decoder=conv1x1"])
