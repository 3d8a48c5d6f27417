"""Checks of an RGB-D data set that name every bad file (the library behind `python -m litedepth_tf.data_check`).

``ROOT/<split>/{rgb,depth}/*.png`` (any split names; by default every sub-folder of ROOT that has ``rgb/`` and
``depth/``, or ROOT itself if it has them). Per pair `check_pair` checks: both files present (paired by file
stem), PNG signature, bit depth and channels from the PNG header (RGB: 8-bit, 3 channels; depth: 16-bit, 1
channel), full decodability (PIL), equal sizes (and the expected size), valid-pixel fraction (0 < depth <=
max_depth; an all-invalid depth map is an error, below ``min_valid`` a warning) and depth range.

The pure-Python helpers here (``pair_files``, ``read_png_header``, ``check_headers``) are also used by
``litedepth_tf.data.pipeline`` to fail fast, with every bad file named, before TensorFlow touches the data.
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import DEPTH_SCALE, INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.common.progress import track

PNG_SIG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> channels (3 = palette)
IMAGE_EXTS = (".png",)


# ------------------------------------------------------------------------------------------------ pairing


def list_images(folder: str) -> dict[str, str]:
    """stem -> path of the PNG files in ``folder`` (hidden / temp files skipped)."""
    out = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTS and not name.startswith("."):
            out[stem] = os.path.join(folder, name)
    return out


def pair_files(split_dir: str):
    """Pair ``split_dir/rgb`` and ``split_dir/depth`` by sorted file stem.

    Returns ``(pairs, problems)``: pairs is a sorted list of ``(stem, rgb_path, depth_path)``; problems lists one
    message per unpaired file in sorted order (empty when the folders match exactly).
    """
    missing = [d for d in ("rgb", "depth") if not os.path.isdir(os.path.join(split_dir, d))]
    if missing:
        raise FileNotFoundError(f"{split_dir}: missing folder(s) {', '.join(missing)} (expected rgb/ and depth/)")
    rgb = list_images(os.path.join(split_dir, "rgb"))
    dep = list_images(os.path.join(split_dir, "depth"))
    pairs = [(s, rgb[s], dep[s]) for s in sorted(rgb.keys() & dep.keys())]
    problems = []
    for s in sorted(rgb.keys() ^ dep.keys()):
        if s in rgb:
            problems.append(f"{rgb[s]}: no depth partner {os.path.join(split_dir, 'depth', s + '.png')}")
        else:
            problems.append(f"{dep[s]}: no rgb partner {os.path.join(split_dir, 'rgb', s + '.png')}")
    return pairs, problems


def first_mismatch(split_dir: str, pairs, problems) -> str:
    """Message naming the first stem mismatch of the two sorted listings (for the pipeline's error)."""
    rgb = sorted(list_images(os.path.join(split_dir, "rgb")))
    dep = sorted(list_images(os.path.join(split_dir, "depth")))
    for i, (a, b) in enumerate(zip(rgb, dep)):
        if a != b:
            return (f"{split_dir}: rgb/ and depth/ differ at sorted position {i}: rgb/{a}.png vs depth/{b}.png "
                    f"({len(rgb)} rgb, {len(dep)} depth files; {len(problems)} unpaired: {problems[0]})")
    return (f"{split_dir}: {len(rgb)} rgb vs {len(dep)} depth files; first unpaired: {problems[0]}")


# ------------------------------------------------------------------------------------------------ headers


def read_png_header(path: str):
    """``(width, height, bit_depth, channels)`` from the IHDR chunk; raises ValueError if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIG or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file (bad signature or header)")
    w, h, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
    if color_type not in _CHANNELS:
        raise ValueError(f"unknown PNG colour type {color_type}")
    return w, h, bit_depth, _CHANNELS[color_type]


def header_problems(rgb_path: str, depth_path: str, size=(INPUT_HEIGHT, INPUT_WIDTH)) -> list[str]:
    """Problems visible from the two PNG headers (cheap: 33 bytes per file)."""
    out, hw = [], {}
    for kind, path, want_bits, want_ch in (("rgb", rgb_path, 8, (3, 4)), ("depth", depth_path, 16, (1,))):
        try:
            w, h, bits, ch = read_png_header(path)
        except (OSError, ValueError) as e:
            out.append(f"{path}: {e}")
            continue
        hw[kind] = (h, w)
        if bits != want_bits or ch not in want_ch:
            want = "8-bit RGB" if kind == "rgb" else "16-bit single-channel"
            out.append(f"{path}: {bits}-bit {ch}-channel PNG, expected {want}")
    if len(hw) == 2 and hw["rgb"] != hw["depth"]:
        out.append(f"{rgb_path}: size {hw['rgb'][0]}x{hw['rgb'][1]} != depth {depth_path} "
                   f"{hw['depth'][0]}x{hw['depth'][1]}")
    elif size is not None and "depth" in hw and hw["depth"] != tuple(size):
        out.append(f"{depth_path}: size {hw['depth'][0]}x{hw['depth'][1]}, expected {size[0]}x{size[1]}")
    return out


def check_headers(pairs, size=(INPUT_HEIGHT, INPUT_WIDTH)) -> list[str]:
    """Header problems of every ``(stem, rgb, depth)`` pair."""
    out = []
    for _, r, d in pairs:
        out += header_problems(r, d, size)
    return out


# ------------------------------------------------------------------------------------------------ full check


def check_pair(rgb_path, depth_path, size=(INPUT_HEIGHT, INPUT_WIDTH), max_depth=MAX_DEPTH, min_valid=0.01):
    """Full check of one pair -> dict(errors=[...], warnings=[...], valid_fraction, dmin, dmax)."""

    res = dict(rgb=rgb_path, depth=depth_path, errors=header_problems(rgb_path, depth_path, size), warnings=[],
               valid_fraction=float("nan"), dmin=float("nan"), dmax=float("nan"))
    for path in (rgb_path, depth_path):
        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            res["errors"].append(f"{path}: cannot decode ({type(e).__name__}: {e})")
            continue
        if path == depth_path and not res["errors"]:
            d = arr.astype(np.float32) / DEPTH_SCALE
            v = (d > 0) & (d <= max_depth)
            frac = float(v.mean())
            res["valid_fraction"] = frac
            if v.any():
                res["dmin"], res["dmax"] = float(d[v].min()), float(d[v].max())
            if frac == 0:
                res["errors"].append(f"{path}: no valid depth pixel (all 0 or > {max_depth:g} m)")
            elif frac < min_valid:
                res["warnings"].append(f"{path}: only {100 * frac:.2f}% valid depth pixels")
    return res


def find_splits(root: str) -> list[str]:
    if os.path.isdir(os.path.join(root, "rgb")) or os.path.isdir(os.path.join(root, "depth")):
        return ["."]
    return sorted(d for d in os.listdir(root)
                  if os.path.isdir(os.path.join(root, d, "rgb")) or os.path.isdir(os.path.join(root, d, "depth")))


def check_dataset(root, splits=None, size=(INPUT_HEIGHT, INPUT_WIDTH), max_depth=MAX_DEPTH, min_valid=0.01,
                  workers=2, progress=True):
    """Check every split; returns ``{split: dict(pairs, bad_files, errors, warnings, stats...)}``."""

    report = {}
    for split in splits or find_splits(root):
        split_dir = os.path.normpath(os.path.join(root, split))
        entry = dict(pairs=0, errors=[], warnings=[], bad_files=[], valid_fraction=[], dmin=np.nan, dmax=np.nan)
        report[split] = entry
        try:
            pairs, problems = pair_files(split_dir)
        except FileNotFoundError as e:
            entry["errors"].append(str(e))
            entry["bad_files"].append(split_dir)
            continue
        entry["pairs"] = len(pairs)
        entry["errors"] += problems
        entry["bad_files"] += [p.split(": ", 1)[0] for p in problems]

        def one(p):
            return check_pair(p[1], p[2], size, max_depth, min_valid)

        with ThreadPoolExecutor(max(1, workers)) as ex:
            results = list(track(ex.map(one, pairs), total=len(pairs), desc=f"check {split}", unit="pair",
                                 disable=None if progress else True))
        for r in results:
            entry["errors"] += r["errors"]
            entry["warnings"] += r["warnings"]
            for msg in r["errors"]:
                f = msg.split(": ", 1)[0]
                if f not in entry["bad_files"]:
                    entry["bad_files"].append(f)
            if np.isfinite(r["valid_fraction"]):
                entry["valid_fraction"].append(r["valid_fraction"])
            if np.isfinite(r["dmin"]):
                entry["dmin"] = np.nanmin([entry["dmin"], r["dmin"]])
                entry["dmax"] = np.nanmax([entry["dmax"], r["dmax"]])
    return report


def format_table(report) -> str:
    rows = [("split", "pairs", "bad files", "warnings", "valid % mean", "valid % min", "depth min m", "depth max m")]
    for split, e in report.items():
        vf = np.asarray(e["valid_fraction"], np.float64)
        rows.append((split, str(e["pairs"]), str(len(e["bad_files"])), str(len(e["warnings"])),
                     f"{100 * vf.mean():.1f}" if vf.size else "-", f"{100 * vf.min():.1f}" if vf.size else "-",
                     f"{e['dmin']:.3f}" if np.isfinite(e["dmin"]) else "-",
                     f"{e['dmax']:.3f}" if np.isfinite(e["dmax"]) else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
