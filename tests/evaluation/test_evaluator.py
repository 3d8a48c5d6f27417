"""litedepth_tf.evaluation.evaluator: library + CLI on a tiny synthetic set, Keras weights vs exported .tflite, baseline."""

import json
import math
import os

import numpy as np
import pytest

from litedepth_tf.evaluation.metrics import METRIC_KEYS, constant_baseline, median_train_depth
from tests.helpers import run_command



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from litedepth_tf.data.synthetic import generate
    from litedepth_tf.tflite.export import export_tflite
    from litedepth_tf.models.student import build_deploy_model, build_student

    from tests.helpers import make_depth_nontrivial

    tmp = tmp_path_factory.mktemp("evaluate")
    root = str(tmp / "data")
    generate(root, 2, 3, seed=7, workers=1, progress=False)
    student = build_student()
    make_depth_nontrivial(student)  # depth varies over the image, not clamped
    weights = str(tmp / "student.weights.h5")
    student.save_weights(weights)
    tfl = export_tflite(build_deploy_model(student, merge_normalization=True), str(tmp / "student.tflite"), "fp32")
    return {"root": root, "weights": weights, "tflite": tfl, "tmp": tmp}


def _cli(*args):
    return run_command(["-m", "litedepth_tf.evaluate", *args])


def test_cli_weights_writes_json(files):
    out = str(files["tmp"] / "eval.json")
    preds = str(files["tmp"] / "preds")
    r = _cli("--weights", files["weights"], "--data_root", files["root"], "--split", "local_val", "--out", out,
             "--save_predictions", preds)
    assert r.returncode == 0, r.stderr
    assert "si-RMSE" in r.stdout and "constant" in r.stdout and "latency" in r.stdout
    with open(out) as f:
        rep = json.load(f)
    assert set(METRIC_KEYS) <= set(rep["metrics"])
    assert set(METRIC_KEYS) <= set(rep["baseline"]["metrics"])
    assert all(math.isfinite(v) for v in [*rep["metrics"].values(), *rep["baseline"]["metrics"].values()])
    assert rep["model"] == files["weights"] and rep["split"] == "local_val" and rep["n_images"] == 3
    assert rep["n_skipped"] == 0 and rep["latency_ms_mean"] > 0
    assert sorted(os.listdir(preds)) == sorted(os.listdir(os.path.join(files["root"], "local_val", "rgb")))


def test_tflite_matches_keras_weights(files):
    from litedepth_tf.evaluation.evaluator import evaluate_model

    keras_rep = evaluate_model(files["weights"], files["root"], "local_val", baseline=False, progress=False)
    tfl_rep = evaluate_model(files["tflite"], files["root"], "local_val", baseline=False, progress=False)
    assert keras_rep["kind"] == "keras" and tfl_rep["kind"] == "tflite" and tfl_rep["baseline"] is None
    assert keras_rep["metrics"]["delta3"] < 1.0  # a real, non-trivial prediction
    for k in METRIC_KEYS:
        assert tfl_rep["metrics"][k] == pytest.approx(keras_rep["metrics"][k], abs=1e-3), k


def test_teacher_weights_evaluate_through_the_unmerged_deploy_view(files, tmp_path):
    """A Swin teacher has no first conv to fold the normalisation into: evaluate builds its deploy view unmerged
    (it used to fail with "No such layer: conv"); asking for a merge names the problem."""
    import keras
    import tensorflow as tf

    from litedepth_tf.evaluation.evaluator import evaluate_model, load_predict_fn
    from litedepth_tf.models.student import build_deploy_model, build_student, can_merge_normalization
    from litedepth_tf.models.presets import build_model

    keras.utils.set_random_seed(3)
    teacher = build_model("teacher_swin_micro")
    path = str(tmp_path / "teacher.weights.h5")
    teacher.save_weights(path)
    assert not can_merge_normalization(teacher) and can_merge_normalization(build_student())
    with pytest.raises(ValueError, match="merge_normalization=False"):
        build_deploy_model(teacher, merge_normalization=True)
    rep = evaluate_model(path, files["root"], "local_val", model_name="teacher_swin_micro", baseline=False,
                         progress=False)
    assert rep["n_images"] == 3 and all(math.isfinite(v) for v in rep["metrics"].values())
    image = tf.random.uniform([1, 480, 640, 3], 0, 255, seed=1)
    want = build_deploy_model(teacher, merge_normalization=False)(image, training=False)
    got = load_predict_fn(path, "teacher_swin_micro")[0](image)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_cli_tflite_and_max_images(files):
    out = str(files["tmp"] / "eval_tfl.json")
    r = _cli("--tflite", files["tflite"], "--data_root", files["root"], "--max_images", "2", "--nobaseline",
             "--out", out)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        rep = json.load(f)
    assert rep["n_images"] == 2 and rep["baseline"] is None and rep["kind"] == "tflite"


def test_baseline_equals_independent_constant_baseline(files):
    from litedepth_tf.common.constants import MAX_DEPTH
    from litedepth_tf.evaluation.evaluator import evaluate_model
    from litedepth_tf.data.pipeline import list_pairs
    from PIL import Image

    rep = evaluate_model(files["weights"], files["root"], "local_val", progress=False)
    median = median_train_depth(files["root"], "train", progress=False, max_depth=MAX_DEPTH)
    assert rep["baseline"]["median_depth_m"] == median and "'train'" in rep["baseline"]["source"]
    gts = []
    for _, _, depth_path in list_pairs(files["root"], "local_val"):
        mm = np.asarray(Image.open(depth_path), np.float64)
        gts.append(np.where(mm > MAX_DEPTH * 1000, 0.0, mm / 1000.0))
    ref = constant_baseline(median, gts)
    for k in METRIC_KEYS:
        assert rep["baseline"]["metrics"][k] == pytest.approx(ref[k], rel=1e-5, abs=1e-6), k


def test_baseline_falls_back_to_eval_split(files, tmp_path):
    from litedepth_tf.evaluation.evaluator import baseline_median

    median, note = baseline_median(files["root"], "local_val", baseline_split="no_such_split", progress=False)
    assert median == median_train_depth(files["root"], "local_val", progress=False, max_depth=40.0)
    assert "missing" in note and "local_val" in note


@pytest.mark.parametrize("args", [[], ["--weights", "a.weights.h5", "--tflite", "b.tflite"]])
def test_weights_tflite_exclusive(files, args):
    r = _cli(*args, "--data_root", files["root"])
    assert r.returncode != 0
    assert "--weights" in r.stderr and "--tflite" in r.stderr


def test_missing_data_root(files, tmp_path):
    from litedepth_tf.evaluation.evaluator import evaluate_model

    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"<split>/\{rgb,depth\}"):
        evaluate_model(files["weights"], missing, progress=False)
    with pytest.raises(FileNotFoundError, match=r"'no_split'.*<split>/\{rgb,depth\}"):
        evaluate_model(files["weights"], files["root"], split="no_split", progress=False)
    r = _cli("--weights", files["weights"], "--data_root", missing)
    assert r.returncode != 0 and "ROOT/<split>/{rgb,depth}/*.png" in r.stderr


def test_compare_to_passes_for_tflite_and_catches_a_drift(files):
    from litedepth_tf.evaluation.evaluator import compare_reports, evaluate_model

    ref = evaluate_model(files["weights"], files["root"], "local_val", baseline=False, progress=False)
    good, bad = str(files["tmp"] / "ref.json"), str(files["tmp"] / "ref_drift.json")
    with open(good, "w") as f:
        json.dump(ref, f)
    drift = json.loads(json.dumps(ref))
    drift["metrics"]["si_rmse"] += 0.01
    with open(bad, "w") as f:
        json.dump(drift, f)
    assert compare_reports(ref, drift, 1e-3) == [("si_rmse", ref["metrics"]["si_rmse"], drift["metrics"]["si_rmse"])]
    r = _cli("--tflite", files["tflite"], "--data_root", files["root"], "--nobaseline", "--compare_to", good)
    assert r.returncode == 0 and "matches" in r.stdout, r.stdout + r.stderr
    r = _cli("--tflite", files["tflite"], "--data_root", files["root"], "--nobaseline", "--compare_to", bad)
    assert r.returncode == 1 and "MISMATCH" in r.stderr and "si_rmse" in r.stderr, r.stdout + r.stderr
