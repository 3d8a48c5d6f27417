"""Swin Transformer encoder (Liu et al., ICCV 2021) in Keras 3, as the dense-prediction backbone.

The structure follows the official detection/segmentation backbone (microsoft/Swin-Transformer and its
Object-Detection / Semantic-Segmentation forks, which the authors' Monocular-Depth-Estimation-Toolbox wraps):

* **patch embedding**: pad H, W (bottom/right, zeros) to a multiple of 4, 4x4 conv stride 4, LayerNorm;
* per stage: `depth` **Swin blocks** alternating regular (shift 0) and **shifted** windows (shift
  `window // 2`); each block is `x + DropPath(W-MSA(LN(x)))`, then `x + DropPath(MLP(LN(x)))` with MLP
  ratio 4 and exact (erf) GELU. Window attention has a learned **relative position bias**
  (`(2w-1)^2 x heads` table). Inputs whose size is not a multiple of the window are padded bottom/right with
  zeros *after* the first LayerNorm and cropped after attention. As in the reference, the padded tokens are
  ordinary (zero) tokens inside their windows: the attention mask only separates the regions that the cyclic
  shift brought together, and it is computed on the padded grid (`Hp x Wp`) with the reference's slices
  `[0, Hp-w), [Hp-w, Hp-s), [Hp-s, Hp)` (masked logits get -100, as in the reference). The window size is never
  clamped to the feature size (the detection backbone does not clamp either): a 4x5 stage-4 map with window 7
  is padded to 7x7 and still shifted by 3;
* **patch merging** between stages: pad to even size, concatenate `x[0::2,0::2], x[1::2,0::2], x[0::2,1::2],
  x[1::2,1::2]` (this order matters for converted weights), LayerNorm(4C), bias-free linear 4C -> 2C;
* **stochastic depth**: drop-path rate rising linearly from 0 to `drop_path_rate` over all blocks;
* a LayerNorm on each stage's output (`norm0` ... `norm3`, as in the detection/segmentation backbones),
  giving features at strides 4, 8, 16, 32 with C, 2C, 4C, 8C channels.

Dropout / attention dropout are 0 in every configuration the authors used, so they are not implemented.

Input: **raw RGB float32 in 0..255**. The encoder normalises inside the graph with the ImageNet statistics
mean = (123.675, 116.28, 103.53), std = (58.395, 57.12, 57.375) (RGB): the statistics the official Swin
checkpoints were trained with, and what the authors' distillation wrapper applies to the teacher's input
(`img_norm_cfg_teacher`), while the student keeps mean = std = 127.5.

Weights are local only (`weights=path`, never a download): a `.npz` written by
`tools/convert_swin_weights.py` from an official PyTorch checkpoint, or a `.weights.h5` saved from a model of the
same preset. Loading is strict: a missing, unexpected or wrongly shaped variable raises an error that names the
first offending variable.
"""

from __future__ import annotations

import math
import os
import tempfile

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras import layers

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
LN_EPS = 1e-5  # PyTorch's LayerNorm default, which the official weights were trained with
MASK_VALUE = -100.0  # the reference's fill value for masked logits

# Presets as data. `drop_path_rate` 0.3 is what the authors' teacher config uses (Swin-L); micro is for tests.
SWIN_PRESETS = {
    "micro": dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.0),
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.3),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7, drop_path_rate=0.3),
    "large": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=7, drop_path_rate=0.3),
}
MLP_RATIO = 4.0


def swin_preset(name: str) -> dict:
    if name not in SWIN_PRESETS:
        raise ValueError(f"Unknown Swin preset {name!r}; choose one of {sorted(SWIN_PRESETS)}")
    return dict(SWIN_PRESETS[name])


def infer_preset(arrays: dict) -> str:
    """The preset whose embed_dim and depths match `{variable name: array}` (converter output)."""
    embed = int(np.shape(arrays["patch_embed/proj/kernel"])[-1])
    depths = tuple(sum(1 for k in arrays if k.startswith(f"stage{i}_block") and k.endswith("/norm1/gamma"))
                   for i in range(4))
    for name, cfg in SWIN_PRESETS.items():
        if cfg["embed_dim"] == embed and tuple(cfg["depths"]) == depths:
            return name
    raise ValueError(f"No Swin preset has embed_dim={embed} and depths={depths}")


def swin_channels(preset: str) -> tuple:
    """Channels of the four features (strides 4, 8, 16, 32)."""
    c = swin_preset(preset)["embed_dim"]
    return (c, 2 * c, 4 * c, 8 * c)


# ---------------------------------------------------------------------------------------------------------------
# Window helpers (plain functions, used by the layers and by the tests)


def window_partition(x, window_size: int):
    """[B, H, W, C] (H, W multiples of the window) -> [B * H/w * W/w, w*w, C], windows in row-major order per
    image (the reference's order)."""
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    c = x.shape[-1] if x.shape[-1] is not None else shape[3]
    ws = window_size
    x = tf.reshape(x, [b, h // ws, ws, w // ws, ws, c])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, ws * ws, c])


def window_reverse(windows, window_size: int, height, width):
    """Inverse of `window_partition`: [B * H/w * W/w, w*w, C] -> [B, H, W, C]."""
    ws = window_size
    c = windows.shape[-1] if windows.shape[-1] is not None else tf.shape(windows)[-1]
    x = tf.reshape(windows, [-1, height // ws, width // ws, ws, ws, c])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, height, width, c])


def shifted_window_mask(height, width, window_size: int, shift_size: int):
    """The reference's attention mask for the shifted blocks, on the padded grid `height x width`:
    [nW, w*w, w*w] float32 with 0 where two tokens come from the same region and -100 elsewhere."""
    ws, s = window_size, shift_size

    def region(n):
        idx = tf.range(n)
        return tf.where(idx < n - ws, 0, tf.where(idx < n - s, 1, 2))

    ids = region(height)[:, None] * 3 + region(width)[None, :]
    win = window_partition(ids[None, :, :, None], ws)[..., 0]  # [nW, N]
    return tf.where(tf.not_equal(win[:, None, :], win[:, :, None]), MASK_VALUE, 0.0)


def relative_position_index(window_size: int) -> np.ndarray:
    """[w*w, w*w] int index into the (2w-1)^2 bias table (the reference's `relative_position_index`)."""
    ws = window_size
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)  # [2, N]
    rel = coords[:, :, None] - coords[:, None, :]  # [2, N, N]
    return ((rel[0] + ws - 1) * (2 * ws - 1) + (rel[1] + ws - 1)).astype(np.int32)


def _pad_to_multiple(x, multiple: int):
    """Zero-pads [B, H, W, C] bottom/right to multiples of `multiple`; returns (padded, H, W)."""
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    pad_b = (multiple - h % multiple) % multiple
    pad_r = (multiple - w % multiple) % multiple
    return tf.pad(x, [[0, 0], [0, pad_b], [0, pad_r], [0, 0]]), h, w


def _ceil_div(n, d):
    return None if n is None else -(-n // d)


def _dense(units, name, use_bias=True):
    return layers.Dense(
        units,
        use_bias=use_bias,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        bias_initializer="zeros",
        name=name,
    )


def _norm(name):
    return layers.LayerNormalization(epsilon=LN_EPS, name=name)


# ---------------------------------------------------------------------------------------------------------------
# Layers


@keras.saving.register_keras_serializable(package="litedepth_tf")
class ImageNetNormalize(layers.Layer):
    """Raw RGB 0..255 -> (x - mean) / std with the ImageNet statistics Swin was trained with."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, x):
        return (x - tf.constant(self.mean, x.dtype)) / tf.constant(self.std, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="litedepth_tf")
class PatchEmbed(layers.Layer):
    """Pad to a multiple of the patch, `patch x patch` conv with stride `patch`, LayerNorm."""

    def __init__(self, embed_dim, patch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = int(embed_dim)
        self.patch_size = int(patch_size)
        self.proj = layers.Conv2D(self.embed_dim, self.patch_size, strides=self.patch_size, name="proj")
        self.norm = _norm("norm")

    def build(self, input_shape):
        self.proj.build((None, None, None, input_shape[-1]))
        self.norm.build((None, None, None, self.embed_dim))

    def call(self, x):
        x, _, _ = _pad_to_multiple(x, self.patch_size)
        return self.norm(self.proj(x))

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, _ceil_div(h, self.patch_size), _ceil_div(w, self.patch_size), self.embed_dim)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="litedepth_tf")
class WindowAttention(layers.Layer):
    """Multi-head self-attention inside windows with a relative position bias. call(windows [Bw, w*w, C],
    attn_mask [nW, w*w, w*w] or None) -> [Bw, w*w, C]; with a mask, windows are grouped per image (Bw = B * nW)."""

    def __init__(self, dim, num_heads, window_size, qkv_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.num_heads = int(num_heads)
        self.window_size = int(window_size)
        self.qkv_bias = bool(qkv_bias)
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        self.head_dim = self.dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = _dense(3 * self.dim, "qkv", use_bias=self.qkv_bias)
        self.proj = _dense(self.dim, "proj")
        self._index = relative_position_index(self.window_size).reshape(-1)

    def build(self, input_shape):
        n = (2 * self.window_size - 1) ** 2
        self.relative_position_bias_table = self.add_weight(
            shape=(n, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="relative_position_bias_table",
        )
        self.qkv.build((None, None, self.dim))
        self.proj.build((None, None, self.dim))

    def relative_position_bias(self):
        n = self.window_size**2
        bias = tf.gather(self.relative_position_bias_table, tf.constant(self._index))  # [N*N, heads]
        return tf.transpose(tf.reshape(bias, [n, n, self.num_heads]), [2, 0, 1])  # [heads, N, N]

    def call(self, x, attn_mask=None):
        n = self.window_size**2
        heads, hd = self.num_heads, self.head_dim
        qkv = tf.reshape(self.qkv(x), [-1, n, 3, heads, hd])
        qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])  # [3, Bw, heads, N, hd]
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = tf.matmul(q, k, transpose_b=True) + self.relative_position_bias()[None]
        if attn_mask is not None:
            n_windows = tf.shape(attn_mask)[0]
            attn = tf.reshape(attn, [-1, n_windows, heads, n, n]) + tf.cast(attn_mask, attn.dtype)[None, :, None]
            attn = tf.reshape(attn, [-1, heads, n, n])
        attn = tf.nn.softmax(attn, axis=-1)
        out = tf.transpose(tf.matmul(attn, v), [0, 2, 1, 3])  # [Bw, N, heads, hd]
        return self.proj(tf.reshape(out, [-1, n, self.dim]))

    def compute_output_shape(self, input_shape, attn_mask_shape=None):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "qkv_bias": self.qkv_bias,
        }


@keras.saving.register_keras_serializable(package="litedepth_tf")
class SwinBlock(layers.Layer):
    """One Swin block on [B, H, W, C] (any H, W): (shifted) window attention + MLP, pre-norm, drop path."""

    def __init__(self, dim, num_heads, window_size=7, shift_size=0, mlp_ratio=MLP_RATIO, drop_path=0.0,
                 qkv_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.num_heads = int(num_heads)
        self.window_size = int(window_size)
        self.shift_size = int(shift_size)
        self.mlp_ratio = float(mlp_ratio)
        self.drop_path = float(drop_path)
        self.qkv_bias = bool(qkv_bias)
        if not 0 <= self.shift_size < self.window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {self.shift_size} for {self.window_size}")
        hidden = int(self.dim * self.mlp_ratio)
        self.norm1 = _norm("norm1")
        self.attn = WindowAttention(self.dim, self.num_heads, self.window_size, self.qkv_bias, name="attn")
        self.norm2 = _norm("norm2")
        self.fc1 = _dense(hidden, "fc1")
        self.fc2 = _dense(self.dim, "fc2")

    def build(self, input_shape):
        c = (None, None, None, self.dim)
        self.norm1.build(c)
        self.attn.build((None, self.window_size**2, self.dim))
        self.norm2.build(c)
        self.fc1.build(c)
        self.fc2.build((None, None, None, int(self.dim * self.mlp_ratio)))

    def _drop_path(self, x, training):
        if not training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        shape = tf.concat([tf.shape(x)[:1], tf.ones([tf.rank(x) - 1], tf.int32)], 0)
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=x.dtype))
        return x / keep * mask

    def attention(self, x):
        """The attention branch on LN(x): pad, cyclic shift, window attention with mask, reverse, crop."""
        ws, s = self.window_size, self.shift_size
        h, height, width = _pad_to_multiple(x, ws)
        hp, wp = tf.shape(h)[1], tf.shape(h)[2]
        mask = None
        if s > 0:
            h = tf.roll(h, shift=[-s, -s], axis=[1, 2])
            mask = shifted_window_mask(hp, wp, ws, s)
        h = window_reverse(self.attn(window_partition(h, ws), attn_mask=mask), ws, hp, wp)
        if s > 0:
            h = tf.roll(h, shift=[s, s], axis=[1, 2])
        return h[:, :height, :width, :]

    def call(self, x, training=None):
        x = x + self._drop_path(self.attention(self.norm1(x)), training)
        y = self.fc2(tf.nn.gelu(self.fc1(self.norm2(x)), approximate=False))
        return x + self._drop_path(y, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "shift_size": self.shift_size,
            "mlp_ratio": self.mlp_ratio,
            "drop_path": self.drop_path,
            "qkv_bias": self.qkv_bias,
        }


@keras.saving.register_keras_serializable(package="litedepth_tf")
class PatchMerging(layers.Layer):
    """[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]: 2x2 neighbourhood concat (reference order), LN, linear."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.norm = _norm("norm")
        self.reduction = _dense(2 * self.dim, "reduction", use_bias=False)

    def build(self, input_shape):
        self.norm.build((None, None, None, 4 * self.dim))
        self.reduction.build((None, None, None, 4 * self.dim))

    def call(self, x):
        x, _, _ = _pad_to_multiple(x, 2)
        x = tf.concat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        return self.reduction(self.norm(x))

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, _ceil_div(h, 2), _ceil_div(w, 2), 2 * self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


# ---------------------------------------------------------------------------------------------------------------
# The encoder


def build_swin_encoder(preset="tiny", input_shape=(None, None, 3), weights=None, drop_path_rate=None,
                       name="swin_encoder") -> keras.Model:
    """keras.Model: raw RGB 0..255 [B, H, W, 3] -> [f4, f8, f16, f32] with C, 2C, 4C, 8C channels
    (C = embed_dim of the preset). Any H, W (padded inside as the reference). `weights`: None (random init,
    truncated normal 0.02 as the reference) or a local `.npz` / `.weights.h5` path, loaded strictly."""
    cfg = swin_preset(preset) if isinstance(preset, str) else dict(preset)
    if drop_path_rate is not None:
        cfg["drop_path_rate"] = float(drop_path_rate)
    dim, depths, heads, ws = cfg["embed_dim"], cfg["depths"], cfg["num_heads"], cfg["window_size"]
    rates = np.linspace(0.0, cfg["drop_path_rate"], sum(depths)).tolist()

    inputs = keras.Input(shape=input_shape, name="image")
    x = ImageNetNormalize(name="normalize")(inputs)
    x = PatchEmbed(dim, 4, name="patch_embed")(x)
    features, k = [], 0
    for i, (depth, n_heads) in enumerate(zip(depths, heads)):
        stage_dim = dim * 2**i
        for j in range(depth):
            x = SwinBlock(stage_dim, n_heads, ws, shift_size=0 if j % 2 == 0 else ws // 2, drop_path=rates[k],
                          name=f"stage{i}_block{j}")(x)
            k += 1
        features.append(_norm(f"norm{i}")(x))
        if i < len(depths) - 1:
            x = PatchMerging(stage_dim, name=f"stage{i}_merge")(x)
    model = keras.Model(inputs, features, name=name)
    if weights is not None:
        load_weights_strict(model, weights)
    return model


# ---------------------------------------------------------------------------------------------------------------
# Strict weight loading with errors that name the first offending variable


def variable_names(model: keras.Model) -> list:
    """Stable names `<layer>/<sublayer>/.../<variable>` of the model's weights, in model order. These are
    the keys of the `.npz` files written by `tools/convert_swin_weights.py`."""
    return [_strip_model_prefix(v.path, model.name) for v in model.weights]


def _strip_model_prefix(path: str, model_name: str) -> str:
    return path[len(model_name) + 1:] if path.startswith(model_name + "/") else path


def load_npz_weights(model: keras.Model, path: str) -> None:
    """Assigns `{name: array}` from an `.npz` to the model's variables; strict on names and shapes."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    names = variable_names(model)
    for name, var in zip(names, model.weights):
        if name not in arrays:
            raise ValueError(f"Weights file {path!r} has no variable {name!r} (expected shape {tuple(var.shape)}); "
                             f"first missing variable of {model.name!r}")
        if tuple(arrays[name].shape) != tuple(var.shape):
            raise ValueError(f"Weights file {path!r} does not match {model.name!r}: first mismatching variable "
                             f"{name!r} has shape {tuple(arrays[name].shape)} in the file, the model expects "
                             f"{tuple(var.shape)} (wrong preset?)")
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise ValueError(f"Weights file {path!r} has {len(extra)} variable(s) that {model.name!r} does not have, "
                         f"first {extra[0]!r} (wrong preset?)")
    for name, var in zip(names, model.weights):
        var.assign(arrays[name].astype(var.dtype))


def _h5_datasets(path: str) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: out.__setitem__(k, v) if isinstance(v, h5py.Dataset) else None)
        return {k: (tuple(v.shape), [float(v[(0,) * v.ndim])] if v.size else []) for k, v in out.items()}


def describe_h5_mismatch(model: keras.Model, path: str):
    """Compares a `.weights.h5` file with what `model.save_weights` writes; returns a sentence naming the first
    variable (in model order, by its `layer/.../variable` name) that is missing, unexpected or shaped
    differently, or None if the file fits. To learn which file entry is which variable, the model is saved once
    with every variable filled with its own index (values restored afterwards): only done on this error path."""

    originals = [v.numpy() for v in model.weights]
    try:
        for i, var in enumerate(model.weights):
            var.assign(np.full(var.shape, i + 1, dtype=var.dtype))
        with tempfile.TemporaryDirectory() as tmp:
            ref_path = os.path.join(tmp, "ref.weights.h5")
            model.save_weights(ref_path)
            want = _h5_datasets(ref_path)
    finally:
        for var, value in zip(model.weights, originals):
            var.assign(value)
    names = variable_names(model)
    index = {key: int(first[0]) - 1 if first else -1 for key, (_, first) in want.items()}
    got = _h5_datasets(path)
    for key in sorted(want, key=lambda k: index[k]):
        name = names[index[key]] if 0 <= index[key] < len(names) else key
        if key not in got:
            return (f"first mismatching variable {name!r} (file entry {key!r}): missing in the file "
                    f"(the model expects shape {want[key][0]})")
        if want[key][0] != got[key][0]:
            return (f"first mismatching variable {name!r} (file entry {key!r}): shape {got[key][0]} in the file, "
                    f"the model expects {want[key][0]}")
    extra = sorted(set(got) - set(want))
    if extra:
        return f"first mismatching variable: file entry {extra[0]!r} (shape {got[extra[0]][0]}) is not in the model"
    return None


def load_weights_strict(model: keras.Model, path) -> None:
    """Loads `.npz` (converter output) or `.weights.h5` (Keras) strictly; errors name the first bad variable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}")
    if path.endswith(".npz"):
        load_npz_weights(model, path)
        return
    problem = describe_h5_mismatch(model, path)
    if problem is not None:
        raise ValueError(f"Weights file {path!r} does not fit {model.name!r}: {problem} (wrong preset?)")
    model.load_weights(path)


def count_params(model: keras.Model) -> int:
    return int(sum(math.prod(v.shape) for v in model.weights))
