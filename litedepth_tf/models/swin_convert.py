"""Convert an official PyTorch Swin Transformer checkpoint into a `.npz` for `build_swin_encoder(weights=...)`.

Get the checkpoint yourself (this project never downloads at run time), e.g. the ImageNet-22k Swin-L the authors'
teacher starts from, `swin_large_patch4_window7_224_22k.pth` (microsoft/Swin-Transformer releases), then:

    python tools/convert_swin_weights.py --pth swin_large_patch4_window7_224_22k.pth \
        --preset large --out weights/swin_large_w7_22k.npz
    # teacher encoder from it:
    #   build_teacher("large", encoder_weights="weights/swin_large_w7_22k.npz")   (or --teacher_encoder_weights)

Accepted inputs: official classification checkpoints (`{"model": state_dict}`), and detection/segmentation
checkpoints of the official forks (`{"state_dict": ...}` with `backbone.` prefixes; the heads are dropped). Only
window-7 checkpoints fit the presets (window size is checked through the bias-table shape).

Reading the `.pth`: with PyTorch installed, `torch.load(..., weights_only=True)`. Without it, a small reader for
PyTorch's zip format (the default since PyTorch 1.6: a zip holding `data.pkl` plus one raw file per storage)
rebuilds the tensors as NumPy arrays without importing torch; the restricted unpickler only accepts the handful
of globals a plain state dict needs. Legacy (pre-1.6, non-zip) files need torch.

Name mapping (PyTorch -> Keras variable names of `litedepth_tf.models.swin`; Linear weights are transposed
`[out, in] -> [in, out]`, the patch conv `[out, in, kh, kw] -> [kh, kw, in, out]`):

| official                                      | Keras                                              |
| --------------------------------------------- | -------------------------------------------------- |
| `patch_embed.proj.weight/bias`                | `patch_embed/proj/kernel/bias`                     |
| `patch_embed.norm.weight/bias`                | `patch_embed/norm/gamma/beta`                      |
| `layers.i.blocks.j.norm1/norm2.weight/bias`   | `stage{i}_block{j}/norm1/norm2/gamma/beta`         |
| `layers.i.blocks.j.attn.qkv/proj.weight/bias` | `stage{i}_block{j}/attn/qkv/proj/kernel/bias`      |
| `layers.i.blocks.j.attn.relative_position_bias_table` | `stage{i}_block{j}/attn/relative_position_bias_table` |
| `layers.i.blocks.j.mlp.fc1/fc2.weight/bias`   | `stage{i}_block{j}/fc1/fc2/kernel/bias`            |
| `layers.i.downsample.norm.weight/bias`        | `stage{i}_merge/norm/gamma/beta`                   |
| `layers.i.downsample.reduction.weight`        | `stage{i}_merge/reduction/kernel`                  |
| `norm{i}.weight/bias` (detection backbones)   | `norm{i}/gamma/beta`                               |

Dropped: `relative_position_index` and `attn_mask` (buffers, recomputed), `head.*` and the classifier's final
`norm.*`. Classification checkpoints have no per-stage output norms `norm0..3`: they are written as a fresh
LayerNorm (ones / zeros), exactly what the official detection/segmentation code does when it loads such a file.
The patch-merging concat order is the official one (`x0, x1, x2, x3` = (0,0), (1,0), (0,1), (1,1)), so no
reordering is needed (mmseg's own Swin re-orders because it merges with `nn.Unfold`).
"""

from __future__ import annotations

import collections
import pickle
import re
import zipfile

import numpy as np

from litedepth_tf.common.files import atomic_path
from litedepth_tf.models.swin import SWIN_PRESETS, build_swin_encoder, infer_preset

LINEAR = "linear"  # [out, in] -> [in, out]
CONV = "conv"  # [out, in, kh, kw] -> [kh, kw, in, out]

_NORM = {"weight": "gamma", "bias": "beta"}
_DENSE = {"weight": "kernel", "bias": "bias"}

_SKIP = (
    re.compile(r".*\.relative_position_index$"),
    re.compile(r".*\.attn_mask$"),
    re.compile(r"^head\."),
    re.compile(r"^norm\.(weight|bias)$"),
)


# (official name pattern, Keras name template, layout): {k} in the template is the k-th group; a "weight" /
# "bias" group maps through _NORM or _DENSE by the template's {norm:k} / {dense:k}; layout None = copy as is, and
# a layout given as (weight layout, bias layout) depends on the last group.
_RULES = (
    (r"patch_embed\.proj\.(weight|bias)", "patch_embed/proj/{dense:1}", (CONV, None)),
    (r"patch_embed\.norm\.(weight|bias)", "patch_embed/norm/{norm:1}", None),
    (r"layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", "stage{1}_block{2}/{3}/{norm:4}", None),
    (r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
     "stage{1}_block{2}/attn/relative_position_bias_table", None),
    (r"layers\.(\d+)\.blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", "stage{1}_block{2}/attn/{3}/{dense:4}",
     (LINEAR, None)),
    (r"layers\.(\d+)\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", "stage{1}_block{2}/{3}/{dense:4}",
     (LINEAR, None)),
    (r"layers\.(\d+)\.downsample\.norm\.(weight|bias)", "stage{1}_merge/norm/{norm:2}", None),
    (r"layers\.(\d+)\.downsample\.reduction\.weight", "stage{1}_merge/reduction/kernel", LINEAR),
    (r"norm([0-3])\.(weight|bias)", "norm{1}/{norm:2}", None),
)


def _fill(template: str, m) -> str:
    def one(ref):
        kind, _, k = ref.group(1).rpartition(":")
        value = m[int(k)]
        return {"norm": _NORM, "dense": _DENSE}[kind][value] if kind else value

    return re.sub(r"\{((?:norm:|dense:)?\d+)\}", one, template)


def map_name(key: str):
    """Official parameter name -> (Keras name, layout) or None for dropped entries; unknown names raise."""
    if any(p.match(key) for p in _SKIP):
        return None
    for pattern, template, layout in _RULES:
        m = re.fullmatch(pattern, key)
        if m:
            if isinstance(layout, tuple):
                layout = layout[0] if m[m.lastindex] == "weight" else layout[1]
            return _fill(template, m), layout
    raise ValueError(f"Unexpected parameter {key!r} in the checkpoint (absolute position embeddings and "
                     f"non-official layouts are not supported)")


def unwrap_state_dict(obj) -> dict:
    """`{"model": sd}` / `{"state_dict": sd}` / sd -> flat sd without `module.` and `backbone.` prefixes
    (with `backbone.` keys present, everything else, i.e. the heads, is dropped)."""
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    return sd


def infer_config(sd: dict) -> dict:
    """embed_dim, depths, num_heads, window_size read off the shapes of an official state dict."""
    embed_dim = int(np.shape(sd["patch_embed.proj.weight"])[0])
    depths, heads, window = [], [], None
    for i in range(4):
        blocks = sorted({int(m[1]) for k in sd if (m := re.match(rf"layers\.{i}\.blocks\.(\d+)\.", k))})
        depths.append(len(blocks))
        table = np.shape(sd[f"layers.{i}.blocks.0.attn.relative_position_bias_table"])
        heads.append(int(table[1]))
        window = int(round((np.sqrt(table[0]) + 1) / 2))
    return dict(embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(heads), window_size=window)


def convert_state_dict(state_dict, preset=None):
    """Official (numpy-valued) state dict -> ({Keras name: float32 array}, notes). With `preset`, the
    checkpoint's architecture must match it (else ValueError naming both)."""

    sd = unwrap_state_dict(state_dict)
    cfg = infer_config(sd)
    notes = [f"checkpoint: embed_dim={cfg['embed_dim']} depths={cfg['depths']} heads={cfg['num_heads']} "
             f"window={cfg['window_size']}"]
    if preset is not None:
        want = {k: SWIN_PRESETS[preset][k] for k in cfg}
        if {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in want.items()} != cfg:
            raise ValueError(f"The checkpoint is {cfg}, preset {preset!r} is {want}")
    out, dropped = {}, []
    for key, value in sd.items():
        target = map_name(key)
        if target is None:
            dropped.append(key)
            continue
        name, layout = target
        arr = np.asarray(value, dtype=np.float32)
        if layout == LINEAR:
            arr = arr.T
        elif layout == CONV:
            arr = arr.transpose(2, 3, 1, 0)
        out[name] = np.ascontiguousarray(arr)
    for i in range(4):
        if f"norm{i}/gamma" not in out:
            c = cfg["embed_dim"] * 2**i
            out[f"norm{i}/gamma"] = np.ones(c, np.float32)
            out[f"norm{i}/beta"] = np.zeros(c, np.float32)
            notes.append(f"norm{i}: not in the checkpoint, fresh LayerNorm (ones/zeros)")
    notes.append(f"dropped {len(dropped)} entries (buffers, classifier head/norm)")
    return out, notes


# ---- reading .pth files -----------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *unused):
    arr, itemsize = storage
    if not size:
        return arr[offset].copy()
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _TorchZipUnpickler(pickle.Unpickler):
    """Rebuilds a state dict of tensors from a PyTorch zip checkpoint as NumPy arrays (no torch import)."""

    def __init__(self, fh, zf, prefix):
        super().__init__(fh)
        self._zf, self._prefix, self._cache = zf, prefix, {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a plain state dict; install PyTorch "
                                     f"to read this checkpoint")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}")
        dtype = _STORAGE_DTYPES.get(storage_type.name)
        if dtype is None:
            raise ValueError(f"{storage_type.name} tensors need PyTorch to read")
        if key not in self._cache:
            raw = self._zf.read(f"{self._prefix}data/{key}")
            arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
            self._cache[key] = (arr, arr.itemsize)
        return self._cache[key]


def read_torch_zip(path: str) -> dict:
    """Reads a PyTorch (>= 1.6) zip checkpoint without torch."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a PyTorch zip checkpoint (legacy format?): install PyTorch to read it")
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise ValueError(f"{path!r} has no data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        with zf.open(pkl[0]) as fh:
            return _TorchZipUnpickler(fh, zf, prefix).load()


def load_checkpoint(path: str):
    """PyTorch checkpoint -> nested dict of NumPy arrays (uses torch if it is installed)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return read_torch_zip(path)
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    sd = unwrap_state_dict(obj)
    return {k: v.detach().float().numpy() if hasattr(v, "detach") else v for k, v in sd.items()}


def convert_file(pth: str, out: str, preset=None, check=True) -> list:
    arrays, notes = convert_state_dict(load_checkpoint(pth), preset)

    with atomic_path(out, suffix=".npz") as tmp:  # np.savez appends .npz to other names; written atomically
        np.savez(tmp, **arrays)
    if check:  # build the encoder and load strictly: every variable present, every shape right

        name = preset or infer_preset(arrays)
        build_swin_encoder(name, input_shape=(64, 64, 3), weights=out)
        notes.append(f"loaded strictly into build_swin_encoder({name!r})")
    return notes
