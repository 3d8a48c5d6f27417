"""Calibration images for int8 export: from the evaluation pipeline, deterministic, clear errors."""

import os

import numpy as np
import pytest
from PIL import Image

from litedepth_tf.tflite.calibration import representative_images
from litedepth_tf.data.synthetic import generate


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib_data")
    generate(str(out), n_train=5, n_val=1, seed=3, workers=1, progress=False)
    return str(out)


def test_yields_n_eval_images_deterministically(root):
    rep = representative_images(root, "train", 3, seed=0)
    batches = list(rep())
    assert len(rep) == 3 and len(batches) == 3
    for b, path in zip(batches, rep.rgb_paths):
        assert isinstance(b, list) and len(b) == 1
        assert b[0].shape == (1, 480, 640, 3) and b[0].dtype == np.float32
        np.testing.assert_array_equal(b[0][0], np.asarray(Image.open(path), np.float32))  # raw 0..255, no aug
    assert rep.stems == sorted(rep.stems)
    assert representative_images(root, "train", 3, seed=0).stems == rep.stems
    assert len(list(rep())) == 3  # re-iterable: the converter may call it more than once
    other = {tuple(representative_images(root, "train", 3, seed=s).stems) for s in range(6)}
    assert len(other) > 1  # the seed picks the subset


def test_n_larger_than_split_or_zero_uses_all(root):
    assert len(list(representative_images(root, "train", 50)())) == 5
    assert len(representative_images(root, "train", 0)) == 5


def test_missing_or_empty_split_is_a_clear_error(root, tmp_path):
    with pytest.raises(ValueError, match=r"calibration split 'nope'.*nope"):
        representative_images(root, "nope", 4)
    for sub in ("rgb", "depth"):
        os.makedirs(tmp_path / "empty" / sub)
    with pytest.raises(ValueError, match=r"calibration split 'empty'.*no PNG pairs"):
        representative_images(str(tmp_path), "empty", 4)
