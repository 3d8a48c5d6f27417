import numpy as np
import pytest

from litedepth_tf.models.mobilenet import MOBILENET_TAPS, build_mobilenet_encoder, imagenet_weights_path
from litedepth_tf.models.student import build_deploy_model, build_student, check_image_batch
from tests.helpers import random_student


@pytest.fixture(scope="module")
def student():
    return random_student(0)


def test_encoder_taps_strides_and_channels():
    encoder = build_mobilenet_encoder(input_shape=(128, 160, 3))
    shapes = [tuple(o.shape[1:]) for o in encoder.outputs]
    assert shapes == [(32, 40, 16), (16, 20, 24), (8, 10, 48), (4, 5, 96)]
    assert [name for name, _ in MOBILENET_TAPS][-1] == "expanded_conv_10_add"
    # Truncated before the last 1x1 96->576 conv.
    assert not any(layer.name == "conv_1" for layer in encoder.layers)


def test_parameter_count_matches_paper(student):
    assert 350_000 <= student.count_params() <= 420_000


@pytest.mark.parametrize("hw", [(128, 160), (64, 96), (96, 128)])
def test_train_view_shapes(student, hw):
    h, w = hw
    out = student(np.zeros((2, h, w, 3), np.float32))
    assert out["depth"].shape == (2, h // 4, w // 4, 1)
    assert out["feat_4"].shape == (2, h // 4, w // 4, 24)
    assert out["feat_8"].shape == (2, h // 8, w // 8, 8)
    assert out["feat_16"].shape == (2, h // 16, w // 16, 24)


def test_depth_is_clamped(student):
    out = student(np.random.default_rng(0).uniform(0, 255, (1, 128, 160, 3)).astype(np.float32))["depth"].numpy()
    assert out.min() >= 1e-3 and out.max() <= 40.0


def test_deploy_view_shares_weights_and_matches_train_view(student):
    deploy = build_deploy_model(student, merge_normalization=False)
    x = np.random.default_rng(1).uniform(0, 255, (1, 480, 640, 3)).astype(np.float32)
    y = deploy(x).numpy()
    assert y.shape == (1, 480, 640, 1)
    assert {id(v) for v in student.weights} <= {id(v) for v in deploy.weights}


def test_deploy_rejects_wrong_size(student):
    deploy = build_deploy_model(student, merge_normalization=False)
    with pytest.raises(ValueError, match=r"480, 640, 3"):
        deploy(np.zeros((1, 240, 320, 3), np.float32))


@pytest.mark.parametrize("shape", [(1, 480, 640, 1), (1, 480, 640, 4), (480, 640, 3), (1, 481, 640, 3)])
def test_check_image_batch_names_expected_shape(shape):
    with pytest.raises(ValueError, match=r"expected shape \[N, 480, 640, 3\]"):
        check_image_batch(np.zeros(shape, np.float32), expected_hw=(480, 640))


@pytest.mark.parametrize("shape", [(2, 100, 160, 3), (2, 128, 160, 1)])
def test_check_image_batch_train_view(shape):
    with pytest.raises(ValueError, match="divisible by 32"):
        check_image_batch(np.zeros(shape, np.float32))
    check_image_batch(np.zeros((2, 128, 160, 3), np.float32))


def test_imagenet_offline_error_names_file_and_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("keras.utils.get_file", no_network)
    with pytest.raises(FileNotFoundError) as err:
        build_mobilenet_encoder(weights="imagenet")
    assert "weights_mobilenet_v3_small_minimalistic" in str(err.value)
    assert str(tmp_path) in str(err.value)
    assert imagenet_weights_path().startswith(str(tmp_path))


def test_encoder_weights_from_local_file(tmp_path):
    from keras.applications import MobileNetV3Small

    base = MobileNetV3Small(input_shape=(None, None, 3), minimalistic=True, include_top=False,
                            include_preprocessing=False, weights=None)
    path = tmp_path / "mnv3.weights.h5"
    base.save_weights(path)
    encoder = build_mobilenet_encoder(weights=str(path))
    np.testing.assert_array_equal(encoder.get_layer("conv").kernel.numpy(), base.get_layer("conv").kernel.numpy())


def test_missing_weight_files_are_named(tmp_path):
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        build_mobilenet_encoder(weights=missing)
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        build_student(weights=missing)


def test_student_weights_round_trip(student, tmp_path):
    path = tmp_path / "student.weights.h5"
    student.save_weights(path)
    other = build_student(weights=str(path))
    x = np.random.default_rng(2).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(other(x)["depth"].numpy(), student(x)["depth"].numpy(), atol=1e-6)


def test_train_view_traces_once_for_every_crop_size(student):
    """The pipeline's element spec has unknown H and W (one R-crop size per batch): one tf.function must serve all."""
    import tensorflow as tf

    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def depth(x):
        traces.append(1)
        return student(x, training=True)["depth"]

    for h, w in [(64, 96), (96, 128), (128, 160)]:
        assert depth(tf.zeros((2, h, w, 3))).shape == (2, h // 4, w // 4, 1)
    assert len(traces) == 1


def test_relu_head_unclamped_in_training_clamped_at_inference():
    """The authors' head: ReLU; the loss sees it unclamped (forward_train), inference clamps to [1e-3, 40]."""
    from litedepth_tf.models.decoder import DepthHead

    x = np.array([-3.0, 0.0, 5e-4, 7.0, 55.0], np.float32).reshape(1, 1, 5, 1)
    head = DepthHead("relu", 40.0)
    np.testing.assert_allclose(head(x, training=True).numpy().ravel(), [0.0, 0.0, 5e-4, 7.0, 55.0])
    np.testing.assert_allclose(head(x, training=False).numpy().ravel(), [1e-3, 1e-3, 1e-3, 7.0, 40.0])
    sig = DepthHead("sigmoid", 40.0)
    np.testing.assert_allclose(sig(x, training=True).numpy(), sig(x, training=False).numpy())
    np.testing.assert_allclose(sig(x).numpy().ravel()[3], 40.0 / (1.0 + np.exp(-7.0)), rtol=1e-6)
    with pytest.raises(ValueError, match="head must be one of"):
        DepthHead("softplus")


@pytest.mark.parametrize("head", ["relu", "sigmoid"])
def test_head_bias_starts_every_pixel_at_the_given_depth(head):
    """set_head_bias with a zero kernel: every pixel of any image predicts the given depth; with the Glorot
    kernel the median over pixels stays near it (every pixel in the ReLU's linear part)."""
    from litedepth_tf.models.decoder import set_head_bias

    model = build_student(head=head)
    set_head_bias(model, 3.7)
    x = np.random.default_rng(2).uniform(0, 255, (2, 128, 160, 3)).astype(np.float32)
    depth = model(x, training=True)["depth"].numpy()
    if head == "relu":
        assert (depth > 0).mean() > 0.99 and abs(float(np.median(depth)) - 3.7) < 1.0
    layer = model.get_layer("decoder_depth_conv")
    layer.set_weights([np.zeros_like(layer.get_weights()[0]), layer.get_weights()[1]])
    np.testing.assert_allclose(model(x, training=True)["depth"].numpy(), 3.7, rtol=1e-5)


def test_decoder_upsampling_is_bilinear_align_corners():
    """ResizeLike = F.interpolate(mode='bilinear', align_corners=True): corners map onto corners."""
    from litedepth_tf.models.decoder import ResizeLike
    from tests.training.authors_reference import interpolate_bilinear_ac

    x = np.random.default_rng(4).normal(size=(2, 4, 5, 3)).astype(np.float32)
    got = ResizeLike()(x, np.zeros((2, 8, 10, 1), np.float32)).numpy()
    want = np.stack([interpolate_bilinear_ac(x[..., c], (8, 10)) for c in range(3)], axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, [0, -1]][:, :, [0, -1]], x[:, [0, -1]][:, :, [0, -1]], rtol=1e-6)
