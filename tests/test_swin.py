"""Swin encoder: window helpers, shifted-window attention vs a naive NumPy full attention, shapes and
parameter counts per preset, .keras round trip, strict weight loading."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.backbones import swin
from litedepth_tf.backbones.swin import (
    SwinBlock,
    build_swin_encoder,
    count_params,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_window_partition_reverse_round_trip_and_order():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 12, 5)).astype(np.float32)
    win = window_partition(tf.constant(x), 4).numpy()
    assert win.shape == (2 * 2 * 3, 16, 5)
    # Reference order: image, window row, window column; row-major inside the window.
    np.testing.assert_array_equal(win[4], x[0, 4:8, 4:8].reshape(16, 5))
    np.testing.assert_array_equal(win[6 + 2], x[1, 0:4, 8:12].reshape(16, 5))
    np.testing.assert_array_equal(window_reverse(tf.constant(win), 4, 8, 12).numpy(), x)


def _reference_mask(hp, wp, ws, s):
    """The reference construction: label regions by slices, partition, compare labels."""
    img = np.zeros((hp, wp))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
        for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            img[hs, wsl] = cnt
            cnt += 1
    win = img.reshape(hp // ws, ws, wp // ws, ws).transpose(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0)


@pytest.mark.parametrize("hp,wp,ws,s", [(6, 9, 3, 1), (14, 21, 7, 3), (8, 8, 4, 2)])
def test_shifted_window_mask_matches_reference_slices(hp, wp, ws, s):
    np.testing.assert_array_equal(shifted_window_mask(hp, wp, ws, s).numpy(), _reference_mask(hp, wp, ws, s))


# ---- a Swin block against full attention over all (padded) tokens, written independently in NumPy ----


def _ln(x, gamma, beta):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _naive_block(x, w, dim, heads, ws, s):
    """x [B, H, W, C] float64. Every token attends to every token of the padded, rolled grid, with -inf outside
    its window, -100 between regions the shift brought together, and the relative position bias."""
    b, h, wd, c = x.shape
    hp, wp = -(-h // ws) * ws, -(-wd // ws) * ws
    y = np.zeros((b, hp, wp, c))
    y[:, :h, :wd] = _ln(x, w["norm1/gamma"], w["norm1/beta"])  # padding after the norm: zero tokens
    rows, cols = np.meshgrid(np.arange(hp), np.arange(wp), indexing="ij")
    rr, cc = ((rows - s) % hp).ravel(), ((cols - s) % wp).ravel()  # coordinates after the cyclic shift

    def region(v, n):
        return np.where(v < n - ws, 0, np.where(v < n - s, 1, 2)) if s else np.zeros_like(v)

    reg = region(rr, hp) * 3 + region(cc, wp)
    same_window = (rr[:, None] // ws == rr[None, :] // ws) & (cc[:, None] // ws == cc[None, :] // ws)
    rel = (rr[:, None] - rr[None, :] + ws - 1) * (2 * ws - 1) + (cc[:, None] - cc[None, :] + ws - 1)
    rel = np.where(same_window, rel, 0)  # pairs across windows are excluded below
    table = w["attn/relative_position_bias_table"]
    hd = dim // heads
    tokens = y.reshape(b, hp * wp, c)
    qkv = tokens @ w["attn/qkv/kernel"] + w["attn/qkv/bias"]
    q, k, v = np.split(qkv, 3, axis=-1)
    out = np.zeros_like(tokens)
    for hh in range(heads):
        sl = slice(hh * hd, (hh + 1) * hd)
        logits = q[..., sl] @ np.swapaxes(k[..., sl], 1, 2) * hd**-0.5 + table[rel, hh]
        logits = logits + np.where(reg[:, None] != reg[None, :], -100.0, 0.0)
        logits = np.where(same_window, logits, -np.inf)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        out[..., sl] = attn @ v[..., sl]
    out = out @ w["attn/proj/kernel"] + w["attn/proj/bias"]
    x = x + out.reshape(b, hp, wp, c)[:, :h, :wd]
    m = _gelu(_ln(x, w["norm2/gamma"], w["norm2/beta"]) @ w["fc1/kernel"] + w["fc1/bias"])
    return x + m @ w["fc2/kernel"] + w["fc2/bias"]


@pytest.mark.parametrize("shift", [0, 1])
def test_swin_block_equals_naive_masked_full_attention(shift):
    dim, heads, ws = 8, 2, 3
    rng = np.random.default_rng(1)
    block = SwinBlock(dim, heads, ws, shift_size=shift, drop_path=0.2, name="blk")
    x = rng.normal(size=(2, 5, 7, dim)).astype(np.float32)  # 5x7 -> padded to 6x9
    block.build(x.shape)
    weights = {}
    for var in block.weights:
        key = var.path.split("/", 1)[1]
        value = rng.normal(size=var.shape) * (0.5 if "table" not in key else 2.0)
        if key.endswith("gamma"):
            value = 1.0 + 0.3 * value
        var.assign(value.astype(np.float32))
        weights[key] = value
    got = block(tf.constant(x), training=False).numpy()
    want = _naive_block(x.astype(np.float64), weights, dim, heads, ws, shift)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Drop path only acts in training mode.
    assert not np.allclose(block(tf.constant(x), training=True).numpy(), got)


# ---- presets ----

EXPECTED_PARAMS = {
    # = official backbone (ImageNet-1k classification count minus head and final norm) + the 4 output norms
    "tiny": 27_520_698,
    "base": 86_745_016,
    "large": 194_998_164,
}


@pytest.mark.parametrize("preset", ["tiny", "base", "large"])
def test_preset_shapes_and_params(preset):
    model = build_swin_encoder(preset, input_shape=(64, 96, 3))  # built symbolically, never run
    c = swin.SWIN_PRESETS[preset]["embed_dim"]
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 16, 24, c), (None, 8, 12, 2 * c), (None, 4, 6, 4 * c), (None, 2, 3, 8 * c)]
    assert count_params(model) == EXPECTED_PARAMS[preset]


def test_micro_runs_on_sizes_not_multiple_of_window():
    model = build_swin_encoder("micro")
    rng = np.random.default_rng(2)
    feats = model(rng.uniform(0, 255, (1, 70, 90, 3)).astype(np.float32))
    # 70x90 -> patch 18x23 -> 9x12 -> 5x6 -> 3x3 (ceil at each step, as the reference pads).
    assert [tuple(f.shape) for f in feats] == [(1, 18, 23, 16), (1, 9, 12, 32), (1, 5, 6, 64), (1, 3, 3, 128)]
    assert all(np.isfinite(f.numpy()).all() for f in feats)


def test_keras_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_swin_encoder("micro", drop_path_rate=0.1)
    x = np.random.default_rng(3).uniform(0, 255, (1, 40, 56, 3)).astype(np.float32)
    want = [f.numpy() for f in model(x)]
    path = tmp_path / "swin_micro.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    got = [f.numpy() for f in loaded(x)]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_strict_weight_loading(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_swin_encoder("micro")
    arrays = {n: v.numpy() for n, v in zip(swin.variable_names(model), model.weights)}
    np.savez(tmp_path / "ok.npz", **arrays)
    h5 = tmp_path / "ok.weights.h5"
    model.save_weights(h5)
    x = np.full((1, 32, 32, 3), 100.0, np.float32)
    want = model(x)[3].numpy()
    for path in (tmp_path / "ok.npz", h5):
        keras.utils.set_random_seed(1)
        other = build_swin_encoder("micro", weights=path)
        np.testing.assert_allclose(other(x)[3].numpy(), want, atol=1e-6)

    bad = dict(arrays)
    bad["stage2_block1/attn/relative_position_bias_table"] = np.zeros((9, 2), np.float32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="stage2_block1/attn/relative_position_bias_table"):
        build_swin_encoder("micro", weights=tmp_path / "bad.npz")

    wider = build_swin_encoder(dict(swin.SWIN_PRESETS["micro"], embed_dim=32))
    wider.save_weights(tmp_path / "wider.weights.h5")
    want_msg = r"first mismatching variable .patch_embed/proj/kernel.*shape \(4, 4, 3, 32\) in the file"
    with pytest.raises(ValueError, match=want_msg):
        build_swin_encoder("micro", weights=tmp_path / "wider.weights.h5")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        build_swin_encoder("micro", weights=tmp_path / "nope.npz")
