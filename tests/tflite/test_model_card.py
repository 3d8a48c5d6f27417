"""The model card next to every export (litedepth_tf.tflite.model_card): written by export_tflite.py, read by
litedepth_tf.load, predict and evaluate, which refuse a file whose card contradicts it."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import litedepth_tf
from litedepth_tf import evaluate, predict
from litedepth_tf.tflite import model_card
from tests.helpers import call_main, random_student, run_command

METRICS = {"si_rmse": 0.4321, "rmse": 3.2, "abs_rel": 0.5}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """export_tflite.py on weights in a run folder with its flags.txt, with an evaluation report of them."""
    d = tmp_path_factory.mktemp("card")
    run = d / "run"
    run.mkdir()
    weights = str(run / "best.weights.h5")
    random_student(51).save_weights(weights)
    (run / "flags.txt").write_text("--steps=10\n--lr=0.001\n")
    report = d / "eval.json"
    report.write_text(json.dumps({"model": weights, "kind": "keras", "metrics": METRICS, "n_images": 7,
                                  "split": "local_val", "data_root": "/data/x"}))
    out = d / "art" / "m_fp32.tflite"
    proc = run_command(["export/export_tflite.py", f"--weights={weights}", "--quant=fp32", f"--out={out}",
                        f"--eval_report={report}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(tflite=str(out), card=str(d / "art" / "m_fp32.card.json"), weights=weights, run=run,
                stdout=proc.stdout, dir=d)


def test_export_writes_a_card_that_describes_the_file(exported):
    card = json.load(open(exported["card"]))
    assert card["format"] == model_card.CARD_FORMAT and f"wrote {exported['card']} (model card)" in exported["stdout"]
    assert card["model"]["file"] == "m_fp32.tflite" and card["model"]["quantization"] == "fp32"
    assert card["model"]["sha256"] == hashlib.sha256(open(exported["tflite"], "rb").read()).hexdigest()
    assert card["model"]["bytes"] == os.path.getsize(exported["tflite"])
    i, o = card["input"], card["output"]
    assert (i["shape"], i["dtype"], i["value_range"], i["quantization"]) == ([1, 480, 640, 3], "float32", [0, 255],
                                                                            None)
    assert i["name"] == "serving_default_image:0" and "raw RGB" in i["meaning"]
    assert (o["shape"], o["dtype"], o["units"], o["valid_range"]) == ([1, 480, 640, 1], "float32", "metres", [1e-3, 40])
    flags_sha = hashlib.sha256((exported["run"] / "flags.txt").read_bytes()).hexdigest()
    assert card["training"] == {"weights": exported["weights"], "flags_file": str(exported["run"] / "flags.txt"),
                                "flags_sha256": flags_sha}
    assert card["evaluation"]["metrics"] == METRICS and card["evaluation"]["n_images"] == 7
    assert card["evaluation"]["split"] == "local_val"
    assert card["parity"]["max_abs_diff"] < card["parity"]["tolerance"] == 1e-4
    gpu = card["gpu_delegate"]
    assert gpu["compatible"] and gpu["incompatible"] == [] and gpu["op_types"]["CONV_2D"] == 27
    assert "GPU delegate: compatible" in exported["stdout"]


def _copy(exported, tmp_path, edit=None):
    tfl = tmp_path / "m.tflite"
    shutil.copy(exported["tflite"], tfl)
    card = json.load(open(exported["card"]))
    if edit:
        edit(card)
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    return str(tfl)


def test_load_reads_a_matching_card_and_works_without_one(exported, tmp_path):
    model = litedepth_tf.load(exported["tflite"])
    assert model.card["model"]["sha256"] == json.load(open(exported["card"]))["model"]["sha256"]
    alone = tmp_path / "alone.tflite"
    shutil.copy(exported["tflite"], alone)
    bare = litedepth_tf.load(str(alone))
    assert bare.card is None
    img = np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)
    np.testing.assert_array_equal(model.predict(img), bare.predict(img))


def _wrong_shape(card):
    card["input"]["shape"] = [1, 240, 320, 3]


def test_a_contradicting_card_is_refused_everywhere(exported, tmp_path, capsys):
    tfl = _copy(exported, tmp_path, _wrong_shape)
    with pytest.raises(model_card.ModelCardError) as err:
        litedepth_tf.load(tfl)
    msg = str(err.value)
    assert "m.card.json" in msg and "m.tflite" in msg and "input shape [1, 240, 320, 3]" in msg
    assert "(the file has [1, 480, 640, 3])" in msg and "\n" not in msg

    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(img)
    assert call_main(predict, "--tflite", tfl, "--input", img, "--out", tmp_path / "out") == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1 and err_lines[0].startswith("error: model card") and "input shape" in err_lines[0]
    assert not (tmp_path / "out" / "depth").exists()

    data = tmp_path / "data" / "local_val"
    for sub in ("rgb", "depth"):
        (data / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(data / "rgb" / "a.png")
    Image.fromarray(np.full((480, 640), 2000, np.uint16)).save(data / "depth" / "a.png")
    assert call_main(evaluate, "--tflite", tfl, "--data_root", tmp_path / "data", "--nobaseline") == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and "contradicts" in err_lines[0] and "m.tflite" in err_lines[0]


def test_a_card_of_another_file_or_a_broken_card_is_refused(exported, tmp_path):
    tfl = _copy(exported, tmp_path, lambda c: c["model"].update(sha256="0" * 64))
    with pytest.raises(model_card.ModelCardError, match="written for another file"):
        litedepth_tf.load(tfl)
    (tmp_path / "m.card.json").write_text("{not json")
    with pytest.raises(model_card.ModelCardError, match="unreadable"):
        litedepth_tf.load(tfl)
    (tmp_path / "m.card.json").write_text(json.dumps({"some": "other json"}))
    with pytest.raises(model_card.ModelCardError, match="not a litedepth_tf model card"):
        litedepth_tf.load(tfl)


def test_quantised_io_contradictions():
    """uint8 I/O: the card carries the quantisation; another scale, zero point or dtype is a contradiction."""
    uint8_in = {"name": "image", "shape": np.array([1, 480, 640, 3]), "dtype": np.uint8, "quantization": (1.0, 0)}
    out = {"name": "depth", "shape": np.array([1, 480, 640, 1]), "dtype": np.uint8, "quantization": (0.157, 0)}
    entry = model_card.tensor_description(uint8_in, "input")
    assert entry["quantization"] == {"scale": 1.0, "zero_point": 0, "real_value": "scale * (q - zero_point)"}
    card = {"model": {"sha256": "abc"}, "input": entry, "output": model_card.tensor_description(out, "output")}
    assert model_card.contradictions(card, "abc", uint8_in, out) == []
    other = dict(out, quantization=(0.2, 3))
    assert model_card.contradictions(card, "abc", uint8_in, other) == [
        "output quantisation scale 0.157 / zero point 0 (the file has 0.2 / 3)"]
    float_in = dict(uint8_in, dtype=np.float32, quantization=(0.0, 0))
    problems = model_card.contradictions(card, "abc", float_in, out)
    assert problems[0] == "input dtype uint8 (the file has float32)" and "input quantisation" in problems[1]


def test_an_eval_report_of_another_model_is_refused(tmp_path):
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({"model": "/elsewhere/other.weights.h5", "metrics": METRICS}))
    with pytest.raises(model_card.ModelCardError, match="evaluated '/elsewhere/other.weights.h5', not this export"):
        model_card.evaluation_entry(report, allowed_models=(str(tmp_path / "w.weights.h5"), "m.tflite"))
    report.write_text("[]")
    with pytest.raises(model_card.ModelCardError, match="not a readable evaluation report"):
        model_card.evaluation_entry(report)
    assert model_card.flags_checksum(str(tmp_path / "w.weights.h5"))["flags_sha256"] is None
