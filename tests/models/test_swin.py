"""Swin encoder: window helpers, shifted-window attention vs a naive NumPy full attention, shapes and
parameter counts per preset, .keras round trip, strict weight loading."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.models import swin
from litedepth_tf.models.swin import (
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


# ---- tools/convert_swin_weights.py on fake checkpoints (no torch needed) ----


def _fake_official_state_dict(model):
    """Inverse of the converter's mapping: Keras encoder -> official PyTorch names/layouts (numpy), as in a
    classification checkpoint (buffers, head and final norm present; no per-stage output norms)."""
    inverse = {"gamma": "weight", "beta": "bias", "kernel": "weight", "bias": "bias"}
    sd = {}
    for name, var in zip(swin.variable_names(model), model.weights):
        value = var.numpy()
        parts = name.split("/")
        if parts[0].startswith("norm"):
            continue  # classification checkpoints have no norm0..3
        if parts[0] == "patch_embed":
            key = f"patch_embed.{parts[1]}.{inverse[parts[2]]}"
            value = value.transpose(3, 2, 0, 1) if parts[1] == "proj" and parts[2] == "kernel" else value
        elif parts[0].endswith("_merge"):
            i = parts[0][len("stage"):].split("_")[0]
            key = f"layers.{i}.downsample.{parts[1]}.{inverse[parts[2]]}"
            value = value.T if parts[1] == "reduction" else value
        else:
            i, j = parts[0][len("stage"):].split("_block")
            if parts[-1] == "relative_position_bias_table":
                key = f"layers.{i}.blocks.{j}.attn.relative_position_bias_table"
                sd[f"layers.{i}.blocks.{j}.attn.relative_position_index"] = np.zeros((16, 16), np.int64)
            else:
                owner = {"attn": "attn", "fc1": "mlp", "fc2": "mlp"}.get(parts[1])
                sub = f"{owner}.{parts[-2]}" if owner else parts[1]
                key = f"layers.{i}.blocks.{j}.{sub}.{inverse[parts[-1]]}"
                value = value.T if parts[-1] == "kernel" else value
        sd[key] = value
    sd["layers.0.blocks.1.attn_mask"] = np.zeros((4, 16, 16), np.float32)
    sd["norm.weight"], sd["norm.bias"] = np.ones(128, np.float32), np.zeros(128, np.float32)
    sd["head.weight"], sd["head.bias"] = np.zeros((10, 128), np.float32), np.zeros(10, np.float32)
    return {"model": sd}


def test_converter_maps_official_names(tmp_path):
    from litedepth_tf.models import swin_convert as conv

    keras.utils.set_random_seed(4)
    model = build_swin_encoder("micro")
    for i in range(4):  # the converter gives a fresh LayerNorm where the checkpoint has none
        norm = model.get_layer(f"norm{i}")
        norm.set_weights([np.ones_like(w) if k == 0 else np.zeros_like(w) for k, w in enumerate(norm.get_weights())])
    arrays, notes = conv.convert_state_dict(_fake_official_state_dict(model), preset="micro")
    assert any("norm0" in n for n in notes)
    assert set(arrays) == set(swin.variable_names(model))
    np.savez(tmp_path / "micro.npz", **arrays)
    loaded = build_swin_encoder("micro", weights=tmp_path / "micro.npz")
    x = np.random.default_rng(5).uniform(0, 255, (1, 36, 44, 3)).astype(np.float32)
    for a, b in zip(loaded(x), model(x)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="preset 'tiny'"):
        conv.convert_state_dict(_fake_official_state_dict(model), preset="tiny")
    # Detection-style checkpoints: backbone. prefix, heads dropped.
    det = {"state_dict": {"backbone." + k: v for k, v in _fake_official_state_dict(model)["model"].items()}}
    det["state_dict"]["decode_head.conv.weight"] = np.zeros((1, 1))
    assert set(conv.convert_state_dict(det)[0]) == set(arrays)


def test_torch_free_zip_reader(tmp_path):
    """A PyTorch-format zip (data.pkl + raw storages) written by hand, read back without torch, including a
    non-contiguous (transposed) tensor."""
    import collections
    import io
    import pickle
    import zipfile

    from litedepth_tf.models import swin_convert as conv

    float_storage = type("FloatStorage", (), {"__module__": "torch"})
    rebuild = type("_rebuild_tensor_v2", (), {"__module__": "torch._utils"})

    class Storage:
        def __init__(self, key, numel):
            self.pid = ("storage", float_storage, key, "cpu", numel)

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return rebuild, self.args

    class Pickler(pickle._Pickler):
        def save_global(self, obj, name=None):
            self.write(pickle.GLOBAL + f"{obj.__module__}\n{obj.__qualname__}\n".encode())
            self.memoize(obj)

        def persistent_id(self, obj):
            return obj.pid if isinstance(obj, Storage) else None

    s0, s1 = Storage("0", 6), Storage("1", 3)
    state = {"model": collections.OrderedDict(
        [("a", Tensor(s0, 0, (3, 2), (1, 3))), ("b", Tensor(s1, 1, (2,), (1,)))])}
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    path = tmp_path / "fake.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/data/0", np.arange(6, dtype="<f4").tobytes())
        zf.writestr("archive/data/1", np.array([7, 8, 9], dtype="<f4").tobytes())
    got = conv.read_torch_zip(str(path))["model"]
    np.testing.assert_array_equal(got["a"], np.arange(6, dtype=np.float32).reshape(2, 3).T)
    np.testing.assert_array_equal(got["b"], [8, 9])
