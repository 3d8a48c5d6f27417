"""Converters to the PNG layouts the input pipeline decodes in the graph (the library behind
`python -m litedepth_tf.convert`). Run once; training then reads 16-bit PNGs at full speed.

* `convert_diode`: DIODE's native ``<name>.png`` + ``<name>_depth.npy`` (float32 metres, HxWx1) +
  ``<name>_depth_mask.npy`` (HxW, 1 = valid) -> ``OUT/<split>/rgb/<stem>.png`` (the RGB file copied) +
  ``OUT/<split>/depth/<stem>.png`` (uint16 depth x 256, masked pixels 0), read by ``--dataset diode``;
* `convert_npy_folder`: a user's ``ROOT/<split>/rgb/*.png|jpg`` + ``ROOT/<split>/depth/*.npy`` (``src_scale``
  values per metre, default metres) -> the same layout at ``out_scale`` (default 1000 = millimetres), read by
  ``--dataset folder --depth_scale <out_scale>``;
* `convert_nyu_mat`: the NYU Depth v2 labelled ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py:
  ``images`` [N, 3, 640, 480] uint8, ``rawDepths`` / ``depths`` [N, 640, 480] float32 metres, stored transposed)
  -> the BTS layout ``OUT/<split>/<scene>/rgb_<i>.jpg`` + ``sync_depth_<i>.png`` (x1000) as BTS's own extraction
  script writes its official test split, and a split file, read by ``--dataset nyu``;
* `mai_to_nyu`: MAI-layout frames copied byte for byte into the NYU layout (``rgb_<id>.png`` + ``sync_depth_<id>
  .png``; both store uint16 millimetres), so that the same frames can be evaluated through both presets.

Every file is written atomically; ``OUT/<split>/dataset.json`` records what was converted and the flags that
read it back. A bad source file (missing partner, wrong shape, non-finite depth) is an error naming it; the
files written before it stay.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
from PIL import Image

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.files import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from litedepth_tf.common.images import png_bytes
from litedepth_tf.common.progress import track
from litedepth_tf.data import datasets
from litedepth_tf.data.check import list_images

NPY_EXT = ".npy"


class ConvertError(InputError):
    """A source file the converter cannot use (names the file and the problem)."""


def to_uint16(depth_m, scale):
    """Metres -> uint16 at ``scale`` values per metre; returns (array, pixels beyond the uint16 range -> 0).
    Non-finite and non-positive depth -> 0 (invalid)."""
    d = np.asarray(depth_m, np.float64)
    v = np.round(np.where(np.isfinite(d), d, 0.0) * scale)
    over = int(np.count_nonzero(v > 65535))
    return np.where((v > 0) & (v <= 65535), v, 0).astype(np.uint16), over


def _copy(src, dst):
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _load_npy(path, what):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConvertError(f"{path}: cannot read the {what} ({type(err).__name__}: {err})") from None


def _depth_2d(arr, path, hw):
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ConvertError(f"{path}: depth array of shape {np.shape(arr)}, expected HxW or HxWx1")
    if hw is not None and a.shape != tuple(hw):
        raise ConvertError(f"{path}: depth {a.shape[0]}x{a.shape[1]} != its RGB frame {hw[0]}x{hw[1]}")
    if not np.issubdtype(a.dtype, np.number):
        raise ConvertError(f"{path}: depth dtype {a.dtype} is not numeric")
    return a.astype(np.float64)


def _stem(path, root):
    return os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "_")


def _manifest(out_split, **info):
    atomic_write_json(os.path.join(out_split, "dataset.json"), info)


def diode_samples(src_root):
    """``[(rgb.png, depth.npy, mask.npy)]`` under ``src_root`` (sorted); ConvertError naming a missing partner."""
    src_root = os.fspath(src_root)
    if not os.path.isdir(src_root):
        raise ConvertError(f"--data_root {src_root} is not a directory")
    out = []
    for folder, dirs, files in os.walk(src_root):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".png"):
                continue
            base = os.path.join(folder, name[:-4])
            depth, mask = base + "_depth.npy", base + "_depth_mask.npy"
            for p, what in ((depth, "depth"), (mask, "depth mask")):
                if not os.path.isfile(p):
                    raise ConvertError(f"{os.path.join(folder, name)}: no {what} partner {p}")
            out.append((os.path.join(folder, name), depth, mask))
    if not out:
        raise ConvertError(f"{src_root}: no DIODE frames (<name>.png + <name>_depth.npy + <name>_depth_mask.npy)")
    return out


def convert_diode(src_root, out_root, split: str = "val", out_scale: float = 256.0, progress: bool = True) -> dict:
    """DIODE native -> ``out_root/split/{rgb,depth}`` (see the module docstring). Returns a summary dict."""
    samples = diode_samples(src_root)
    out_split = os.path.join(os.fspath(out_root), split)
    over_total, hw0 = 0, None
    for rgb, depth, mask in track(samples, desc="convert diode", unit="frame", disable=None if progress else True):
        with Image.open(rgb) as im:
            hw = (im.height, im.width)
        d = _depth_2d(_load_npy(depth, "depth"), depth, hw)
        m = np.asarray(_load_npy(mask, "depth mask"))
        if m.shape != hw:
            raise ConvertError(f"{mask}: mask {m.shape}, expected {hw[0]}x{hw[1]} like {rgb}")
        d = np.where(m > 0.5, d, 0.0)
        if not np.isfinite(d).all():
            raise ConvertError(f"{depth}: non-finite depth values inside the mask")
        png, over = to_uint16(d, out_scale)
        over_total += over
        stem = _stem(rgb, src_root)
        _copy(rgb, os.path.join(out_split, "rgb", stem + ".png"))
        atomic_write_bytes(os.path.join(out_split, "depth", stem + ".png"), png_bytes(png))
        hw0 = hw0 or hw
    info = dict(source=os.fspath(src_root), converted="diode", frames=len(samples), depth_scale=out_scale,
                frame_size=list(hw0), beyond_range_pixels=over_total,
                read_with=f"--dataset diode --data_root {os.fspath(out_root)} --split {split}")
    _manifest(out_split, **info)
    return info


def convert_npy_folder(src_root, out_root, split: str = ".", src_scale: float = 1.0, out_scale: float = 1000.0,
                       progress: bool = True) -> dict:
    """``src_root/split/rgb`` + ``depth/*.npy`` -> ``out_root/split/{rgb,depth}`` PNGs (see the module docstring).
    """
    base = os.path.normpath(os.path.join(os.fspath(src_root), split))
    for sub in ("rgb", "depth"):
        if not os.path.isdir(os.path.join(base, sub)):
            raise ConvertError(f"{base}: missing folder {sub}/ (expected rgb/*.png|jpg and depth/*.npy)")
    rgb_dir = os.path.join(base, "rgb")
    rgbs = {os.path.splitext(n)[0]: os.path.join(rgb_dir, n) for n in sorted(os.listdir(rgb_dir))
            if n.lower().endswith(datasets.IMAGE_EXTS) and not n.startswith(".")}
    npys = {os.path.splitext(n)[0]: os.path.join(base, "depth", n) for n in sorted(os.listdir(os.path.join(base, "depth")))
            if n.endswith(NPY_EXT) and not n.startswith(".")}
    for stem in sorted(rgbs.keys() ^ npys.keys()):
        if stem in rgbs:
            raise ConvertError(f"{rgbs[stem]}: no depth partner {os.path.join(base, 'depth', stem + NPY_EXT)}")
        raise ConvertError(f"{npys[stem]}: no rgb partner in {rgb_dir}")
    if not rgbs:
        raise ConvertError(f"{base}: no rgb/ + depth/*.npy pairs")
    out_split = os.path.normpath(os.path.join(os.fspath(out_root), split))
    over_total = 0
    for stem in track(sorted(rgbs), desc="convert npy", unit="frame", disable=None if progress else True):
        with Image.open(rgbs[stem]) as im:
            hw = (im.height, im.width)
            rgb_png = rgbs[stem].lower().endswith(".png") and im.mode == "RGB"
            rgb = None if rgb_png else np.asarray(im.convert("RGB"))
        d = _depth_2d(_load_npy(npys[stem], "depth"), npys[stem], hw) / float(src_scale)
        png, over = to_uint16(d, out_scale)
        over_total += over
        if rgb is None:
            _copy(rgbs[stem], os.path.join(out_split, "rgb", stem + ".png"))
        else:
            atomic_write_bytes(os.path.join(out_split, "rgb", stem + ".png"), png_bytes(rgb))
        atomic_write_bytes(os.path.join(out_split, "depth", stem + ".png"), png_bytes(png))
    info = dict(source=base, converted="npy folder", frames=len(rgbs), depth_scale=out_scale,
                beyond_range_pixels=over_total,
                read_with=f"--dataset folder --depth_scale {out_scale:g} --data_root {os.fspath(out_root)} "
                          f"--split {split}")
    _manifest(out_split, **info)
    return info


def _read_indices(path, n):
    try:
        with open(path, encoding="utf-8") as f:
            idx = [int(t) for t in f.read().replace(",", " ").split()]
    except (OSError, ValueError) as err:
        raise ConvertError(f"--indices {path}: not a list of 1-based frame numbers ({err})") from None
    bad = [i for i in idx if not 1 <= i <= n]
    if bad:
        raise ConvertError(f"--indices {path}: frame {bad[0]} outside 1..{n}")
    return [i - 1 for i in idx]


NYU_BORDER = (7, 474, 7, 632)  # rows / cols of the labelled frames that hold image (BTS blacks out the rest)


def _scene_names(f, n):
    """The labelled file's per-frame scene names (``sceneTypes``: references to uint16 character arrays), or
    None when the file has none."""
    if "sceneTypes" not in f:
        return None
    refs = np.asarray(f["sceneTypes"]).ravel()
    if len(refs) != n:
        return None
    return ["".join(chr(int(c)) for c in np.asarray(f[r]).ravel()) for r in refs]


def convert_nyu_mat(mat_path, out_root, split: str = "test", indices=None, rgb_format: str = "jpg",
                    depth_key: str | None = None, progress: bool = True) -> dict:
    """NYU labelled .mat -> the BTS layout, as BTS's ``extract_official_train_test_set_from_mat.py`` writes its
    ``official_splits/test`` (the frames the published NYU numbers are measured on): ``OUT/<split>/<scene>/
    rgb_<i>.jpg`` (the image outside rows 7:474, cols 7:632 set to black) + ``sync_depth_<i>.png`` (the raw depth
    ``rawDepths`` x 1000, truncated to uint16), ``<i>`` the 0-based frame number, ``<scene>`` from ``sceneTypes``.
    ``indices``: a file of 1-based frame numbers (BTS takes ``testNdxs`` of splits.mat: the 654 Eigen test
    frames), default every frame; ``depth_key``: ``rawDepths`` (default when present) or ``depths`` (the
    colourised, filled maps). Returns a summary with the split file written (``OUT/nyu_<split>.txt``)."""
    mat_path = os.fspath(mat_path)
    try:
        f = h5py.File(mat_path, "r")
    except OSError as err:
        raise ConvertError(f"--nyu_mat {mat_path}: not an HDF5 (MATLAB v7.3) file ({err})") from None
    with f:
        key = depth_key or ("rawDepths" if "rawDepths" in f else "depths")
        for k in ("images", key):
            if k not in f:
                raise ConvertError(f"--nyu_mat {mat_path}: no '{k}' dataset (found {sorted(f.keys())})")
        images, depths = f["images"], f[key]
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3 or depths.shape != (n, *images.shape[2:]):
            raise ConvertError(f"--nyu_mat {mat_path}: images {images.shape} / {key} {depths.shape}, expected "
                               "[N, 3, W, H] and [N, W, H]")
        scenes = _scene_names(f, n)
        order = list(range(n)) if indices is None else _read_indices(indices, n)
        out_split = os.path.join(os.fspath(out_root), split)
        r0, r1, c0, c1 = NYU_BORDER
        lines = []
        for i in track(order, desc="convert nyu .mat", unit="frame", disable=None if progress else True):
            rgb = np.asarray(images[i]).transpose(2, 1, 0).astype(np.uint8)
            framed = np.zeros_like(rgb)
            framed[r0:r1, c0:c1] = rgb[r0:r1, c0:c1]
            depth = np.asarray(depths[i], np.float32).T * np.float32(1000.0)  # float32, truncated: as BTS writes it
            png = np.where(np.isfinite(depth) & (depth > 0), np.minimum(depth, 65535), 0).astype(np.uint16)
            rel = os.path.join(split, scenes[i]) if scenes else split
            name = f"rgb_{i:05d}.{rgb_format}"
            if rgb_format == "jpg":
                with atomic_path(os.path.join(out_root, rel, name)) as tmp:
                    Image.fromarray(framed).save(tmp, format="JPEG", quality=95)
            else:
                atomic_write_bytes(os.path.join(out_root, rel, name), png_bytes(framed))
            atomic_write_bytes(os.path.join(out_root, rel, f"sync_depth_{i:05d}.png"), png_bytes(png))
            lines.append(f"{rel}/{name} {rel}/sync_depth_{i:05d}.png {datasets.NYU_INTRINSICS[0]}")
    split_file = os.path.join(os.fspath(out_root), f"nyu_{split}.txt")
    atomic_write_text(split_file, "\n".join(lines) + "\n")
    info = dict(source=mat_path, converted=f"nyu labelled .mat ({key})", frames=len(order), depth_scale=1000.0,
                split_file=split_file,
                read_with=f"--dataset nyu --data_root {os.fspath(out_root)} --split_file {split_file}")
    _manifest(out_split, **info)
    return info


def mai_to_nyu(mai_root, split, out_root, scene: str = "scene", progress: bool = True) -> dict:
    """MAI ``mai_root/split/{rgb,depth}/<stem>.png`` -> ``out_root/<split>/<scene>/rgb_<stem>.png`` +
    ``sync_depth_<stem>.png`` (byte copies) and ``out_root/nyu_<split>.txt`` (BTS split-file lines)."""
    base = os.path.join(os.fspath(mai_root), split)
    if not (os.path.isdir(os.path.join(base, "rgb")) and os.path.isdir(os.path.join(base, "depth"))):
        raise ConvertError(f"--from_mai {mai_root}: no {split}/rgb and {split}/depth folders")
    rgb, dep = list_images(os.path.join(base, "rgb")), list_images(os.path.join(base, "depth"))
    stems = sorted(rgb.keys() & dep.keys())
    if not stems:
        raise ConvertError(f"{base}: no rgb/depth PNG pairs")
    folder = os.path.join(os.fspath(out_root), split, scene)
    lines = []
    for stem in track(stems, desc="MAI -> NYU", unit="frame", disable=None if progress else True):
        _copy(rgb[stem], os.path.join(folder, f"rgb_{stem}.png"))
        _copy(dep[stem], os.path.join(folder, f"sync_depth_{stem}.png"))
        lines.append(f"/{scene}/rgb_{stem}.png /{scene}/sync_depth_{stem}.png {datasets.NYU_INTRINSICS[0]}")
    split_file = os.path.join(os.fspath(out_root), f"nyu_{split}.txt")
    atomic_write_text(split_file, "\n".join(lines) + "\n")
    info = dict(source=base, converted="MAI layout -> NYU layout (byte copies)", frames=len(stems),
                split_file=split_file, read_with=f"--dataset nyu --data_root {os.path.join(os.fspath(out_root), split)} "
                f"--split_file {split_file}")
    _manifest(os.path.join(os.fspath(out_root), split), **info)
    return info


def read_manifest(out_split):
    with open(os.path.join(out_split, "dataset.json"), encoding="utf-8") as f:
        return json.load(f)
