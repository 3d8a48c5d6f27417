"""The Middlebury motorcycle end to end: convert, predict, figure, evaluate (Keras weights and .tflite)."""

import os

import numpy as np
import pytest
from PIL import Image

from litedepth_tf import middlebury, predict
from litedepth_tf.data import middlebury as mb
from litedepth_tf.evaluation.evaluator import evaluate_model
from tests.helpers import call_main, student_files


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("middlebury")
    mb.convert(str(out))
    return str(out)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    return student_files(tmp_path_factory.mktemp("mb_models"), 41, "student.tflite")


def test_predict_and_figure_on_the_motorcycle(root, model_files, tmp_path):
    weights, tfl = model_files
    rgb = os.path.join(root, "local_val", "rgb", "motorcycle.png")
    assert call_main(predict, "--tflite", tfl, "--input", rgb, "--out", tmp_path / "pred") == 0
    assert np.asarray(Image.open(tmp_path / "pred" / "depth" / "motorcycle.png")).shape == (480, 640)
    fig = tmp_path / "demo.png"
    assert call_main(middlebury, "--figure", fig, "--weights", weights, "--data_root", root) == 0
    h, w = np.asarray(Image.open(fig)).shape[:2]
    assert h > 480 and w > 3 * 640


def test_evaluate_on_the_motorcycle(root, model_files):
    weights, tfl = model_files
    for path in (weights, tfl):
        result = evaluate_model(path, root, split="local_val", progress=False)
        assert result["n_images"] == 1 and np.isfinite(result["metrics"]["si_rmse"])
