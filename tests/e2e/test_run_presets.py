"""A run remembers its preset: evaluate, export_tflite.py, predict and litedepth_tf.load given the weights of a run
trained with --decoder=conv3x3 build student_conv3x3 without being told; an explicit --model that contradicts the
run is one line, exit 2; the same weights outside the run need their --model."""

import json
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

import litedepth_tf
from litedepth_tf import evaluate, predict
from litedepth_tf.models.presets import build_model
from tests.helpers import call_main, run_command, synthetic_root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as train leaves it (flags.txt with --model and --decoder) with conv3x3 student weights, the
    same weights outside it, and a small data set."""
    d = tmp_path_factory.mktemp("run_presets")
    (d / "run").mkdir()
    keras.utils.set_random_seed(3)
    weights = str(d / "run" / "best.weights.h5")
    build_model("student_conv3x3").save_weights(weights)
    (d / "run" / "flags.txt").write_text("--data_root=data\n--decoder=conv3x3\n--model=student\n--steps=5\n")
    loose = str(d / "loose.weights.h5")
    shutil.copy(weights, loose)
    return dict(weights=weights, loose=loose, dir=d, data=synthetic_root(tmp_path_factory, "run_presets_data", 1, 2,
                                                                         seed=5))


def _one_error(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_load_reads_the_run_and_refuses_a_contradiction(run):
    model = litedepth_tf.load(run["weights"])
    assert model.preset == "student_conv3x3"
    image = np.full((48, 64, 3), 128, np.uint8)
    np.testing.assert_array_equal(model.predict(image),
                                  litedepth_tf.load(run["loose"], model="student_conv3x3").predict(image))
    with pytest.raises(ValueError, match="model=student contradicts the run .* trained student_conv3x3"):
        litedepth_tf.load(run["weights"], model="student")
    with pytest.raises(ValueError, match="loose.weights.h5"):  # outside the run: the default student does not fit
        litedepth_tf.load(run["loose"])


def test_evaluate_and_predict_without_model(run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    base = ["--data_root", run["data"], "--split=local_val", "--nobaseline"]
    assert call_main(evaluate, "--weights", run["weights"], *base, "--out", out) == 0
    assert json.loads(out.read_text())["model_name"] == "student_conv3x3"
    capsys.readouterr()
    assert call_main(evaluate, "--weights", run["weights"], "--model", "student_80m", *base) == 2
    assert "--model=student_80m contradicts the run" in _one_error(capsys)
    img = tmp_path / "x.png"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(img)
    assert call_main(predict, "--weights", run["weights"], "--input", img, "--out", tmp_path / "o") == 0
    capsys.readouterr()
    assert call_main(predict, "--weights", run["weights"], "--model", "student", "--input", img,
                     "--out", tmp_path / "o2") == 2
    assert "trained student_conv3x3" in _one_error(capsys)


def test_export_without_model_and_a_contradiction(run, tmp_path):
    out = tmp_path / "m.tflite"
    proc = run_command(["export/export_tflite.py", "--weights", run["weights"], "--out", out, "--noparity"])
    assert proc.returncode == 0 and out.exists(), proc.stderr[-3000:]
    np.testing.assert_allclose(litedepth_tf.load(str(out)).predict(np.full((48, 64, 3), 90, np.uint8)),
                               litedepth_tf.load(run["weights"]).predict(np.full((48, 64, 3), 90, np.uint8)),
                               atol=1e-3)
    proc = run_command(["export/export_tflite.py", "--weights", run["weights"], "--model", "student",
                        "--out", tmp_path / "n.tflite"])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "contradicts the run" in errors[0], proc.stderr[-3000:]
    assert not (tmp_path / "n.tflite").exists()
