"""The Swin teacher: the student's interface, decoder widths, sizes, strict weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from litedepth_tf.models import teacher as teacher_mod
from litedepth_tf.models.swin import count_params, swin_channels
from litedepth_tf.common.constants import MAX_DEPTH, MIN_DEPTH
from litedepth_tf.models.teacher import analytic_macs, build_teacher, measure_flops


def test_same_interface_as_student():
    from litedepth_tf.models.student import build_student

    keras.utils.set_random_seed(0)
    teacher = build_teacher("micro")
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    t_out = teacher(x, training=False)
    s_out = build_student()(x, training=False)
    assert sorted(t_out) == sorted(s_out) == ["depth", "feat_16", "feat_4", "feat_8"]
    for key in s_out:  # same spatial sizes, so the affinities line up pixel for pixel
        assert tuple(t_out[key].shape[:3]) == tuple(s_out[key].shape[:3])
    depth = t_out["depth"].numpy()
    assert depth.min() >= MIN_DEPTH and depth.max() <= MAX_DEPTH
    assert t_out["feat_4"].numpy().min() < 0  # pre-activation


def test_real_presets_decoder_and_params():
    assert swin_channels("large") == (192, 384, 768, 1536)  # the authors' teacher decoder inputs
    model = build_teacher("tiny", input_shape=(128, 160, 3))  # symbolic only
    assert tuple(model.output["feat_4"].shape) == (None, 32, 40, 24)
    assert tuple(model.output["feat_8"].shape) == (None, 16, 20, 32)
    assert tuple(model.output["feat_16"].shape) == (None, 8, 10, 64)
    assert count_params(model) == 27_661_227


def test_flops_profiler_agrees_with_analytic_macs():
    model = build_teacher("micro", input_shape=(64, 96, 3))
    flops = measure_flops(model, (64, 96, 3))
    macs = analytic_macs("micro", 64, 96)
    assert 0.95 < flops / (2 * macs) < 1.15  # the profiler also counts norms, softmax, biases


def test_weights_round_trip_and_wrong_shapes(tmp_path, monkeypatch):
    keras.utils.set_random_seed(1)
    model = build_teacher("micro")
    path = tmp_path / "teacher.weights.h5"
    model.save_weights(path)
    x = np.full((1, 32, 32, 3), 90.0, np.float32)
    np.testing.assert_allclose(build_teacher("micro", weights=path)(x)["depth"].numpy(),
                               model(x)["depth"].numpy(), atol=1e-6)
    monkeypatch.setitem(teacher_mod.TEACHER_DECODER, "micro", dict(channels=(40, 16, 8), logits_dim=16))
    with pytest.raises(ValueError, match=r"first mismatching variable 'decoder_conv32/kernel'.*\(1, 1, 128, 32\)"):
        build_teacher("micro", weights=path)


def test_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(2)
    model = build_teacher("micro")
    x = np.random.default_rng(1).uniform(0, 255, (1, 48, 64, 3)).astype(np.float32)
    path = tmp_path / "teacher.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for key in ("depth", "feat_8"):
        np.testing.assert_allclose(loaded(x)[key].numpy(), model(x)[key].numpy(), atol=1e-5)


def test_no_weight_decay_names_select_tables_and_norms():
    model = build_teacher("micro")
    opt = keras.optimizers.AdamW(teacher_mod.TEACHER_LEARNING_RATE, weight_decay=teacher_mod.TEACHER_WEIGHT_DECAY)
    opt.exclude_from_weight_decay(var_names=list(teacher_mod.TEACHER_NO_WEIGHT_DECAY))
    decayed = {v.path for v in model.trainable_variables if opt._use_weight_decay(v)}
    assert not any("relative_position_bias_table" in n or "norm" in n for n in decayed)
    assert any(n.endswith("attn/qkv/kernel") for n in decayed) and any("decoder_conv4" in n for n in decayed)
