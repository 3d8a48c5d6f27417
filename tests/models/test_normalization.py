"""Merged normalisation equals the unmerged model, borders included."""

import numpy as np
import pytest

from litedepth_tf.models.normalization import MergedNormConv2D, fold_normalization, same_padding
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite.parity import parity_inputs
from tests.helpers import random_student


@pytest.fixture(scope="module")
def student():
    return random_student(3)


def test_same_padding_matches_tensorflow():
    import tensorflow as tf

    for size in (128, 129, 160, 7):
        x = tf.ones((1, size, size, 1))
        ref = tf.nn.conv2d(x, tf.ones((3, 3, 1, 1)), 2, "SAME")
        top, bottom = same_padding(size, 3, 2)
        ours = tf.nn.conv2d(tf.pad(x, [[0, 0], [top, bottom], [top, bottom], [0, 0]]), tf.ones((3, 3, 1, 1)), 2, "VALID")
        np.testing.assert_array_equal(ref.numpy(), ours.numpy())


def test_folded_conv_equals_conv_of_normalised_input():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)
    x = rng.uniform(0, 255, (1, 16, 20, 3)).astype(np.float32)
    x[:, 0], x[:, :, -1] = 255, 255  # bright borders: zero padding of raw pixels would be wrong here
    ref = tf.nn.conv2d((x - 127.5) / 127.5, kernel, 2, "SAME").numpy()
    layer = MergedNormConv2D(8, 3, 2, pad_value=127.5)
    layer.build((1, 16, 20, 3))
    layer.set_weights(list(fold_normalization(kernel, None, 127.5, 127.5)))
    np.testing.assert_allclose(layer(x).numpy(), ref, atol=2e-5)


def test_zero_padding_would_break_the_borders():
    """Negative control: the naive fold (pad raw pixels with 0) differs at the borders, so the tests above
    really check the padding value."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    x = np.full((1, 16, 20, 3), 255.0, np.float32)
    ref = tf.nn.conv2d((x - 127.5) / 127.5, kernel, 2, "SAME").numpy()
    k2, b2 = fold_normalization(kernel, None, 127.5, 127.5)
    naive = tf.nn.conv2d(x, k2, 2, "SAME").numpy() + b2
    assert np.abs(naive - ref).max() > 0.1


def test_merged_deploy_model_equals_unmerged(student):
    unmerged = build_deploy_model(student, merge_normalization=False)
    merged = build_deploy_model(student, merge_normalization=True)
    merged_core = next(layer for layer in merged.layers if layer.name.endswith("_merged"))
    assert not any(layer.name == "normalize" for layer in merged_core.layers)
    for x in parity_inputs(3, seed=5):
        a, b = unmerged(x).numpy(), merged(x).numpy()
        assert a.std() > 1e-3, "degenerate output: the comparison would prove nothing"
        assert np.abs(a - b).max() < 1e-5
