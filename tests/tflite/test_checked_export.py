"""The checked export library (litedepth_tf.tflite.checked_export) called directly, as export_tflite.py calls it:
the quantisation list, one export with its GPU report, parity figures and model card, and the GPU requirement
that leaves the previous file alone."""

import json

import pytest

from litedepth_tf.common.cli import InputError
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite.checked_export import ExportOptions, GpuIncompatibleError, export_checked, parse_quants
from litedepth_tf.tflite.export import tflite_name
from tests.helpers import random_student


def test_parse_quants_keeps_the_order_once_each_and_names_a_bad_mode():
    assert parse_quants([" INT8", "fp32", "int8", "fp16"]) == ["int8", "fp32", "fp16"]
    with pytest.raises(InputError, match=r"--quant: 'fp8' is not a quantisation mode \(one or more of fp32, fp16, "
                                         r"int8\)"):
        parse_quants(["fp32", "fp8"])
    with pytest.raises(InputError, match="give one or more"):
        parse_quants([])
    assert tflite_name("int8", "uint8") == "litedepth_int8_uint8io.tflite" and tflite_name("fp16") == \
        "litedepth_fp16.tflite"


def test_export_checked_writes_the_file_and_its_card_and_says_so(tmp_path):
    deploy = build_deploy_model(random_student(7))
    out, lines = str(tmp_path / "m.tflite"), []
    assert export_checked(deploy, "fp32", out, ExportOptions(), log=lines.append) == out
    card = json.load(open(tmp_path / "m.card.json"))
    assert card["model"]["quantization"] == "fp32" and card["model"]["upsample"] == "nearest"
    assert card["parity"]["max_abs_diff"] < card["parity"]["tolerance"] and card["gpu_delegate"]["compatible"]
    assert card["training"]["weights"] is None and card["model"]["created_by"] == "export/export_tflite.py"
    assert [line.split(" ", 1)[0] for line in lines[1:]] == ["wrote", "parity", "wrote"], lines
    assert "GPU delegate: compatible" in lines[0] and "network 128x160" in lines[1]

    (tmp_path / "g.tflite").write_bytes(b"the previous export")  # conv upsampling: MIRROR_PAD, not on the GPU
    bilinear = build_deploy_model(random_student(7), final_resize="bilinear")  # conv upsampling needs bilinear
    with pytest.raises(GpuIncompatibleError, match="MIRROR_PAD.*nothing written"):
        export_checked(bilinear, "fp32", str(tmp_path / "g.tflite"),
                       ExportOptions(upsample="conv", parity=False, require_gpu_compatible=True), log=lines.append)
    assert (tmp_path / "g.tflite").read_bytes() == b"the previous export" and not (tmp_path / "g.card.json").exists()
