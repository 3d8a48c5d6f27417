"""Structure-aware distillation loss against a NumPy reference written like the authors' loop (with the nearest
mask; the default bilinear mask against the authors' transcription: test_losses_authors.py), plus the
memory-aware variants, the trainer hook and the bad-input errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.training.distill import (
    load_teacher_for_distillation,
    make_distill_fn,
    resize_mask,
    structure_affinity_loss,
)


def _nearest_np(valid, size):
    """PyTorch legacy nearest: source index floor(i * in / out)."""
    h, w = valid.shape[1:3]
    rows = np.floor(np.arange(size[0]) * h / size[0]).astype(int)
    cols = np.floor(np.arange(size[1]) * w / size[1]).astype(int)
    return valid[:, rows][:, :, cols]


def _reference_loss(fs, ft, valid):
    """Per image: keep valid pixels, L2-normalise over channels, cosine affinities, mean squared difference;
    mean over images that have valid pixels."""
    mask = _nearest_np(valid, fs.shape[1:3])[..., 0] > 0
    losses = []
    for i in range(fs.shape[0]):
        if not mask[i].any():
            continue
        s, t = fs[i][mask[i]], ft[i][mask[i]]
        s = s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-12)
        t = t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-12)
        losses.append(np.mean((s @ s.T - t @ t.T) ** 2))
    return float(np.mean(losses)) if losses else 0.0


def _case(seed=0, b=3, h=6, w=8, cs=8, ct=24, vh=45, vw=60):
    rng = np.random.default_rng(seed)
    fs = rng.normal(size=(b, h, w, cs)).astype(np.float32)
    ft = rng.normal(size=(b, h, w, ct)).astype(np.float32) + 0.5
    valid = (rng.uniform(size=(b, vh, vw, 1)) > 0.3).astype(np.float32)
    valid[1] = 0.0  # an image without any valid pixel is left out of the mean
    return fs, ft, valid


def test_nearest_mask_matches_torch_legacy_nearest():
    _, _, valid = _case()
    got = resize_mask(tf.constant(valid), (6, 8), "nearest").numpy()
    np.testing.assert_array_equal(got, _nearest_np(valid, (6, 8)))


@pytest.mark.parametrize("method", ["dense", "gram"])
def test_loss_matches_numpy_reference(method):
    fs, ft, valid = _case()
    got = structure_affinity_loss(tf.constant(fs), tf.constant(ft), tf.constant(valid), mask_mode="nearest",
                                  method=method).numpy()
    want = _reference_loss(fs.astype(np.float64), ft.astype(np.float64), valid)
    assert want > 0.01
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_mask_modes_any_all():
    valid = np.zeros((1, 4, 4, 1), np.float32)
    valid[0, 0, 0] = 1.0
    valid[0, 2:, 2:] = 1.0
    np.testing.assert_array_equal(resize_mask(valid, (2, 2), "any").numpy()[0, ..., 0], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(resize_mask(valid, (2, 2), "all").numpy()[0, ..., 0], [[0, 0], [0, 1]])


def test_max_pixels_pools_with_masked_average():
    fs, ft, valid = _case(seed=1, h=8, w=10, vh=8, vw=10)  # GT at the feature size: nearest is identity
    full = structure_affinity_loss(fs, ft, valid).numpy()
    np.testing.assert_allclose(structure_affinity_loss(fs, ft, valid, max_pixels=80).numpy(), full, rtol=1e-6)

    def pool(f, m):  # 2x2 masked average, valid if any valid
        b, h, w, c = f.shape
        num = (f * m).reshape(b, h // 2, 2, w // 2, 2, c).sum((2, 4))
        den = m.reshape(b, h // 2, 2, w // 2, 2, 1).sum((2, 4))
        return num / np.maximum(den, 1e-12), (den > 0).astype(np.float32)

    ps, pm = pool(fs.astype(np.float64), valid)
    pt, _ = pool(ft.astype(np.float64), valid)
    got = structure_affinity_loss(fs, ft, valid, max_pixels=20).numpy()  # 80 px -> k = 2 -> 4x5
    np.testing.assert_allclose(got, _reference_loss(ps, pt, pm), rtol=1e-4)


def test_no_valid_pixel_gives_zero_and_finite_gradient():
    fs, ft, valid = _case()
    fs = tf.Variable(fs)
    with tf.GradientTape() as tape:
        loss = structure_affinity_loss(fs, ft, np.zeros_like(valid))
    assert float(loss) == 0.0
    assert np.isfinite(tape.gradient(loss, fs).numpy()).all()


def test_teacher_feature_resized_to_student():
    fs, ft, valid = _case()
    big = tf.image.resize(ft, (12, 16), method="bilinear")
    want = structure_affinity_loss(fs, tf.image.resize(big, (6, 8), method="bilinear"), valid)
    np.testing.assert_allclose(structure_affinity_loss(fs, big, valid).numpy(), want.numpy(), rtol=1e-6)


def test_distill_fn_hook_freezes_teacher():
    from litedepth_tf.models.teacher import build_teacher

    keras.utils.set_random_seed(0)
    teacher = build_teacher("micro")
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)),
        "valid": tf.constant((rng.uniform(size=(2, 240, 240, 1)) > 0.2).astype(np.float32)),
    }
    student = {k: tf.Variable(rng.normal(size=(2, 64 // s, 64 // s, c)).astype(np.float32))
               for k, s, c in (("feat_4", 4, 24), ("feat_8", 8, 8), ("feat_16", 16, 24))}
    fn = make_distill_fn(teacher, weight=10.0)
    with tf.GradientTape(persistent=True) as tape:
        losses = fn(student, batch)
        total = tf.add_n(list(losses.values()))
    assert sorted(losses) == ["distill_16", "distill_4", "distill_8"]
    t_out = teacher(batch["image"], training=False)
    unweighted = structure_affinity_loss(student["feat_8"], t_out["feat_8"], batch["valid"])
    np.testing.assert_allclose(losses["distill_8"].numpy(), 10.0 * unweighted.numpy(), rtol=1e-5)
    assert all(g is not None for g in tape.gradient(total, list(student.values())))
    assert all(g is None for g in tape.gradient(total, teacher.weights))
    assert not teacher.trainable_weights


def test_missing_teacher_checkpoint_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--teacher_weights"):
        load_teacher_for_distillation(None)
    with pytest.raises(FileNotFoundError, match="--teacher_weights"):
        load_teacher_for_distillation(tmp_path / "missing.weights.h5", preset="micro")
    with pytest.raises(ValueError, match="--teacher_weights"):
        make_distill_fn(None)
