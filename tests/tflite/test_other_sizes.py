"""The model at a non-MAI frame size (KITTI's 352x1216): the deploy view, the .tflite export and its Keras parity,
the signature check, and the API at that size."""

import keras
import numpy as np
import pytest

import litedepth_tf
from litedepth_tf.data import datasets
from litedepth_tf.models.student import build_deploy_model, build_student
from litedepth_tf.models.upsample import apply_upsample, upsample_factors_ok
from litedepth_tf.tflite.model_card import build_card
from litedepth_tf.tflite.parity import parity_inputs, run_export_parity_test
from litedepth_tf.tflite.runtime import TFLiteModel
from tests.helpers import make_depth_nontrivial, random_student, randomize_batchnorm

KITTI = datasets.KITTI.frame_size


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(5)
    wide = build_student(max_depth=80.0)  # what flags/kitti.cfg trains (--model=student_80m)
    randomize_batchnorm(wide, 5)
    make_depth_nontrivial(wide, bias=45.0)  # ~45 m: the 80 m head's upper half is exercised
    deploy = build_deploy_model(wide, frame_size=KITTI)
    path = str(tmp_path_factory.mktemp("kitti_export") / "kitti_fp32.tflite")
    report = run_export_parity_test(deploy, "fp32", tflite_path=path)
    return deploy, path, report


def test_deploy_view_at_the_kitti_size(exported):
    deploy, _, _ = exported
    assert tuple(deploy.input.shape) == (1, 352, 1216, 3) and tuple(deploy.output.shape) == (1, 352, 1216, 1)
    core = [layer for layer in deploy.layers if isinstance(layer, keras.Model)][0]
    assert tuple(core.input.shape[1:3]) == datasets.KITTI.net_size == (96, 320)  # the paper's ratio, /32


def test_tflite_parity_and_signature(exported):
    deploy, path, report = exported
    peak = max(float(np.max(deploy(x))) for x in parity_inputs(3, 0, *KITTI))
    assert peak > 40.0  # beyond the 40 m head's reach
    assert deploy.depth_range == 80.0  # the head's range scales the tolerance: float rounding scales with it
    assert report.tolerance == pytest.approx(1e-4 * max(2.0, peak / 40.0))
    assert report.max_abs_diff < report.tolerance and report.num_inputs >= 3
    tfl = TFLiteModel(path, expected_size=KITTI)
    assert tfl.frame_size == KITTI
    card = build_card(path, tfl.input, tfl.output, "fp32", max_depth=deploy.depth_range)
    assert card["output"]["valid_range"] == [1e-3, 80.0] and card["input"]["shape"] == [1, 352, 1216, 3]
    with pytest.raises(ValueError, match=r"kitti_fp32\.tflite.*input shape \(1, 352, 1216, 3\).*\(1, 480, 640, 3\)"):
        TFLiteModel(path)  # a 480x640 user is told, not fed a wrong-sized frame


def test_api_at_the_kitti_size(exported):
    deploy, path, _ = exported
    model = litedepth_tf.load(path, input_size=KITTI)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)  # a raw KITTI frame: resized in, depth back out
    assert model.predict(image).shape == (375, 1242)
    frame = rng.uniform(0, 255, (1, *KITTI, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict_network(frame), np.asarray(deploy(frame))[0, ..., 0], rtol=1e-5,
                               atol=1e-4)


def test_80m_head_and_upsampling_factors():
    wide = build_student(max_depth=80.0)
    make_depth_nontrivial(wide, bias=60.0)  # the ReLU head at ~60 m: beyond 40 m, clamped only at 80 m
    x = np.full((1, 64, 96, 3), 128.0, np.float32)
    assert float(np.max(wide(x)["depth"])) > 40.0
    deploy = build_deploy_model(wide, frame_size=(128, 192), final_resize="bilinear")
    assert float(np.max(deploy(np.full((1, 128, 192, 3), 128.0, np.float32)))) > 40.0  # merged copy keeps 80 m
    assert upsample_factors_ok((480, 640), (128, 160)) and not upsample_factors_ok(KITTI, (96, 320))
    assert apply_upsample(deploy, "int8", "auto") is not deploy  # 128x192 from 32x48: x4 factors, conv
    kitti = build_deploy_model(random_student(1), frame_size=KITTI, final_resize="bilinear")
    assert apply_upsample(kitti, "int8", "auto") is kitti  # non-integer factors: the resize stays
    with pytest.raises(ValueError, match="integer factors"):
        apply_upsample(kitti, "int8", "conv")
