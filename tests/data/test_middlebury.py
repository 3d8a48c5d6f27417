"""Middlebury 2014 Motorcycle (scikit-image package data, offline) -> metric depth in the MAI layout."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from litedepth_tf.data import middlebury as mb
from litedepth_tf.data.pipeline import make_dataset


def test_known_disparity_maps_to_known_depth():
    # 2 m exactly: disparity = B * f / Z - doffs
    d2 = mb.BASELINE_MM * mb.FOCAL_PX / 2000.0 - mb.DOFFS_PX
    depth = mb.disparity_to_depth(np.array([[d2, 60.0, np.inf, np.nan, 0.0, -3.0]]))
    np.testing.assert_allclose(depth[0, :2], [2.0, 193.001 * 994.978 / 91.086 / 1000], rtol=1e-6)
    assert (depth[0, 2:] == 0).all()  # no ground truth -> invalid
    # skimage's images and disparities are the full-resolution benchmark downsampled by 4: the quarter-res
    # calibration on d equals the full-res calib.txt on 4 d
    full = mb.disparity_to_depth(4 * np.array([d2, 60.0]), mb.FULL_RES_FOCAL_PX, mb.FULL_RES_DOFFS_PX)
    np.testing.assert_allclose(full, depth[0, :2], rtol=1e-4)


def test_skimage_motorcycle_is_available_offline():
    left, disp = mb.load_motorcycle()
    assert left.shape == (500, 741, 3) and disp.shape == (500, 741)
    finite = disp[np.isfinite(disp)]
    assert 0 < finite.min() and finite.max() < 270 / 4 + 1  # quarter of the benchmark's ndisp


def test_crop_box_keeps_4_3():
    assert mb.crop_box(500, 741) == (0, 37, 500, 667)
    assert mb.crop_box(600, 640) == (60, 0, 480, 640)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("middlebury")
    mb.convert(str(out))
    return str(out)


def test_convert_writes_mai_pairs(root):
    man = json.load(open(os.path.join(root, mb.MANIFEST)))
    for split in ("local_val", "train"):
        rgb = np.asarray(Image.open(os.path.join(root, split, "rgb", "motorcycle.png")))
        with Image.open(os.path.join(root, split, "depth", "motorcycle.png")) as im:
            assert im.mode == "I;16"
            mm = np.asarray(im)
        assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8 and mm.shape == (480, 640)
        valid = mm[mm > 0] / 1000.0
        assert 0.85 < valid.size / mm.size and 2.0 < valid.min() and valid.max() < 5.5  # the scene: ~2.1-5 m
    assert man["valid_fraction"] > 0.85
    batch = next(iter(make_dataset(root, "local_val", 1, training=False)))
    assert batch["image"].shape == (1, 480, 640, 3) and batch["depth"].shape == (1, 480, 640, 1)
    assert float(batch["valid"].numpy().mean()) == pytest.approx(man["valid_fraction"])


def test_depth_is_nearest_resampled(root):
    """Nearest resampling: every output depth value exists in the cropped source depth (no blended edges)."""
    left, disp = mb.load_motorcycle()
    src = np.round(mb.disparity_to_depth(disp) * 1000).astype(np.uint16)
    out = np.asarray(Image.open(os.path.join(root, "local_val", "depth", "motorcycle.png")))
    assert np.isin(np.unique(out), np.unique(src)).all()
