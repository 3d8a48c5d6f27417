"""GPU delegate compatibility, op by op (litedepth_tf.tflite.gpu_check), and export_tflite.py
--require_gpu_compatible."""

import os

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite import gpu_check
from litedepth_tf.tflite.export import export_tflite
from tests.helpers import random_student, run_command

STUDENT_OPS = {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "MAXIMUM", "MINIMUM", "PADV2",
               "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}  # the ReLU head's clamp: MAXIMUM / MINIMUM


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu_students")
    deploy = build_deploy_model(random_student(41))
    return {q: export_tflite(deploy, str(d / f"s_{q}.tflite"), q) for q in ("fp32", "fp16")}


def _convert(fn, shape=(1, 8, 8, 3)):
    f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    return tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()


@pytest.mark.parametrize("quant", ["fp32", "fp16"])
def test_the_students_are_fully_gpu_compatible(students, quant):
    report = gpu_check.check_gpu_compatibility(students[quant])
    assert report.compatible, gpu_check.format_report(report)
    assert report.incompatible == []
    types = {r["op"] for r in report.ops}
    extra = {"DEQUANTIZE"} if quant == "fp16" else set()  # fp16 keeps its weights in float16 behind DEQUANTIZE
    assert types == STUDENT_OPS | extra
    assert sum(r["op"] == "CONV_2D" for r in report.ops) == 27 and len({r["index"] for r in report.ops}) == len(
        report.ops)
    summary = report.summary()
    assert summary["compatible"] and summary["ops"] == len(report.ops) and summary["op_types"]["CONV_2D"] == 27
    assert gpu_check.format_report(report).startswith("GPU delegate: compatible")


def test_an_op_the_delegate_lacks_is_caught_and_named():
    data = _convert(lambda x: tf.math.top_k(tf.reshape(tf.nn.relu(x), [1, -1]), k=3).values)
    report = gpu_check.check_gpu_compatibility(data)
    assert not report.compatible
    assert [(r["op"], r["gpu_ok"]) for r in report.ops] == [("RELU", True), ("RESHAPE", True), ("TOPK_V2", False)]
    bad = report.incompatible[0]
    assert bad["index"] == 2 and bad["reason"] == "Not supported op TOPK_V2" and bad["source"] == "rules"
    msg = report.error_message()
    assert "1 of 3 ops" in msg and "op #2 TOPK_V2 (Not supported op TOPK_V2)" in msg
    assert "op #2 TOPK_V2: Not supported op TOPK_V2" in gpu_check.format_report(report)


def test_op_constraints_not_only_op_names():
    """The same op passes or fails on its options: MIRROR_PAD only in REFLECT mode (the int8 export's final
    upsampling pads SYMMETRIC), RESIZE_BILINEAR not with align_corners and half_pixel_centers together."""
    reflect = gpu_check.check_gpu_compatibility(_convert(lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]],
                                                                          mode="REFLECT")))
    symmetric = gpu_check.check_gpu_compatibility(_convert(lambda x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]],
                                                                            mode="SYMMETRIC")))
    assert [r["op"] for r in reflect.ops] == ["MIRROR_PAD"] and reflect.compatible
    assert not symmetric.compatible and "Only Reflective padding" in symmetric.incompatible[0]["reason"]
    resize = gpu_check.check_gpu_compatibility(_convert(
        lambda x: tf.compat.v1.image.resize_bilinear(x, [16, 16], align_corners=False, half_pixel_centers=True)))
    assert resize.compatible and [r["op"] for r in resize.ops] == ["RESIZE_BILINEAR"]
    rows = gpu_check.rule_check(_convert(lambda x: x[:, 0] * 2.0))  # shrink_axis_mask: the delegate refuses
    assert [(op, reason is None) for _, _, op, reason in rows] == [("STRIDED_SLICE", False), ("MUL", True)]
    assert "shrinkAxisMask" in rows[0][3]


ANALYZER_WITH_CHECK = """=== TFLite ModelAnalyzer ===

Subgraph#0 main(T#0) -> [T#3]
  Op#0 RELU(T#0) -> [T#1]
  Op#1 RESHAPE(T#1, T#4[1, -1]) -> [T#2]
GPU COMPATIBILITY WARNING: Expected 1 runtime input tensor(s), but node has 2 runtime input(s).
  Op#2 TOPK_V2(T#2, T#5[3]) -> [T#3, T#6]
GPU COMPATIBILITY WARNING: Not supported op TOPK_V2

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 1, 2 with TFLite runtime version 2.16.0
"""


def test_analyzer_warnings_are_parsed_and_merged(monkeypatch):
    ops, warnings, verdict = gpu_check.parse_analyzer(ANALYZER_WITH_CHECK)
    assert ops == [(0, 0, "RELU"), (0, 1, "RESHAPE"), (0, 2, "TOPK_V2")] and verdict is False
    assert warnings == {(0, 1): "Expected 1 runtime input tensor(s), but node has 2 runtime input(s).",
                        (0, 2): "Not supported op TOPK_V2"}
    # a TensorFlow build whose analyzer carries the check: its warnings count, next to the delegate's rules
    monkeypatch.setattr(gpu_check, "analyzer_text", lambda data: ANALYZER_WITH_CHECK)
    report = gpu_check.check_gpu_compatibility(
        _convert(lambda x: tf.math.top_k(tf.reshape(tf.nn.relu(x), [1, -1]), k=3).values))
    assert [r["gpu_ok"] for r in report.ops] == [True, False, False]
    assert report.ops[1]["source"] == "analyzer" and "2 runtime input(s)" in report.ops[1]["reason"]
    assert report.ops[2]["source"] == "analyzer+rules" and report.analyzer_says_compatible is False


def test_this_tensorflow_analyzer_prints_no_gpu_warnings():
    """Why the rules exist: this TensorFlow's analyzer calls every model compatible, TOPK_V2 included. If a
    TensorFlow upgrade restores the check, this test fails and the report starts to carry its warnings too."""
    text = gpu_check.analyzer_text(_convert(lambda x: tf.math.top_k(tf.reshape(x, [1, -1]), k=3).values))
    assert "TOPK_V2" in text and "looks compatible with GPU delegate" in text and "WARNING" not in text


def test_require_gpu_compatible_fails_naming_the_op_and_writes_nothing(tmp_path):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"the previous export")
    # --upsample conv: the final upsampling pads SYMMETRIC (MIRROR_PAD), which the GPU delegate lacks
    proc = run_command(["export/export_tflite.py", "--quant=fp32", "--final_resize=bilinear", "--upsample=conv",
                        "--noparity",
                        "--require_gpu_compatible", f"--out={out}"])
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MIRROR_PAD" in errors[0] and str(out) in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "NOT compatible" in proc.stdout and "op #" in proc.stdout
    assert out.read_bytes() == b"the previous export" and not (tmp_path / "m.card.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]


def test_dequantize_of_a_constant_counts_as_a_constant():
    """fp16 weights sit behind DEQUANTIZE ops; the delegate folds them, so a conv keeps 1 runtime input."""
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))

    def fn(x):
        return tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))

    f = tf.function(fn, input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    rows = gpu_check.rule_check(conv.convert())
    assert [op for _, _, op, _ in rows].count("DEQUANTIZE") >= 1
    assert all(reason is None for *_, reason in rows), rows
