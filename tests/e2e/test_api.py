"""litedepth_tf.load / litedepth_tf.api: one pre/post-processing for Keras weights and .tflite files."""


import keras
import numpy as np
import pytest

import litedepth_tf
from litedepth_tf import api
from litedepth_tf.tflite.export import export_tflite
from tests.helpers import run_command, student_files


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return student_files(tmp_path_factory.mktemp("api_models"), 21)


def _image(h, w, seed=0):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    img = np.stack([255 * yy, 255 * xx, 128 + 100 * np.sin(9 * xx * yy)], -1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_keras_and_tflite_agree_at_the_images_own_size(models):
    weights, tfl = models
    k, t = litedepth_tf.load(weights), litedepth_tf.load(tfl)
    assert (k.kind, t.kind) == ("keras", "tflite")
    for shape in ((480, 640), (301, 457), (720, 960)):
        img = _image(*shape)
        dk, dt = k.predict(img), t.predict(img)
        assert dk.shape == dt.shape == shape and dk.dtype == dt.dtype == np.float32
        assert np.abs(dk - dt).max() < 1e-3
        assert dk.std() > 1e-3  # a non-trivial depth map
    assert k.last_latency_ms > 0 and t.last_latency_ms > 0


def test_network_input_is_the_image_at_480x640(models):
    img = _image(480, 640)
    prep = api.prepare_image(img)
    assert prep.network_input.shape == (1, 480, 640, 3) and prep.network_input.dtype == np.float32
    np.testing.assert_array_equal(prep.network_input[0], img.astype(np.float32))
    assert prep.size == (480, 640) and prep.notes == []
    # the same as the bare network at deploy size
    t = litedepth_tf.load(models[1])
    np.testing.assert_allclose(t.predict(img), t.predict_network(prep.network_input), atol=1e-6)
    assert api.restore_size(np.ones((1, 480, 640, 1)), (7, 9)).shape == (7, 9)


def test_channel_and_dtype_rules():
    g = np.full((10, 12), 100, np.uint8)
    rgb, notes = api.to_rgb(g)
    assert rgb.shape == (10, 12, 3) and (rgb == 100).all() and "grayscale" in notes[0]
    rgba = np.dstack([_image(10, 12), np.zeros((10, 12), np.uint8)])
    rgb, notes = api.to_rgb(rgba)
    np.testing.assert_array_equal(rgb, rgba[..., :3].astype(np.float32))
    assert "alpha" in notes[0]
    rgb16, notes = api.to_rgb(np.full((4, 4, 3), 65535, np.uint16))
    assert np.allclose(rgb16, 255.0) and "16-bit" in notes[0]
    unit, notes = api.to_rgb(np.full((4, 4, 3), 0.5, np.float32))
    assert np.allclose(unit, 127.5) and "0..1" in notes[0]
    raw, notes = api.to_rgb(np.full((4, 4, 3), 200.0))
    assert np.allclose(raw, 200.0) and notes == []
    with pytest.raises(ValueError, match="shape"):
        api.to_rgb(np.zeros((4, 4, 5)))


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"model\.onnx.*unsupported"):
        litedepth_tf.load(str(tmp_path / "model.onnx"))
    with pytest.raises(FileNotFoundError, match="absent.tflite"):
        litedepth_tf.load(str(tmp_path / "absent.tflite"))
    inputs = keras.Input((240, 320, 3), batch_size=1)
    small = export_tflite(keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs)), str(tmp_path / "small.tflite"))
    with pytest.raises(ValueError, match=r"small\.tflite.*LiteDepth signature"):
        litedepth_tf.load(small)


def test_import_and_tflite_inference_do_not_import_tensorflow(models):
    code = ("import sys, numpy as np, litedepth_tf; assert 'tensorflow' not in sys.modules; "
            f"d = litedepth_tf.load({models[1]!r}).predict(np.zeros((50, 60, 3), np.uint8)); "
            "assert d.shape == (50, 60); print('tf' if 'tensorflow' in sys.modules else 'no-tf')")
    out = run_command(["-c", code])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("no-tf")


def test_point_cloud_is_the_predicted_depth_back_projected(models):
    from litedepth_tf.common.pointcloud import backproject, default_intrinsics

    t = litedepth_tf.load(models[1])
    img = _image(120, 160)
    points, colors = t.point_cloud(img)
    depth = t.predict(img)
    assert points.shape == (120 * 160, 3) and points.dtype == np.float32 and colors.dtype == np.uint8
    np.testing.assert_array_equal(points[:, 2], depth.ravel())
    np.testing.assert_array_equal(colors, img.reshape(-1, 3))
    ref, _ = backproject(depth, default_intrinsics((120, 160)), img)
    np.testing.assert_array_equal(points, ref)
    k = (100.0, 100.0, 80.0, 60.0)
    custom, _ = t.point_cloud(img, intrinsics=k)
    np.testing.assert_allclose(custom[:, 0], (np.tile(np.arange(160), 120) - 80.0) * depth.ravel() / 100.0,
                               rtol=1e-5, atol=1e-6)
