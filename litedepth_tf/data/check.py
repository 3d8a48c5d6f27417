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

import math
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


def read_jpeg_header(path: str):
    """``(width, height, 8, channels)`` from a JPEG's start-of-frame marker; ValueError if not a JPEG."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            raise ValueError("not a JPEG file (bad signature)")
        while True:
            b = f.read(1)
            while b and b != b"\xff":
                b = f.read(1)
            while b == b"\xff":
                b = f.read(1)
            if not b:
                raise ValueError("JPEG file without a frame header (truncated?)")
            marker = b[0]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                continue
            seg = f.read(2)
            if len(seg) < 2:
                raise ValueError("JPEG file truncated in a marker segment")
            length = struct.unpack(">H", seg)[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                body = f.read(6)
                if len(body) < 6:
                    raise ValueError("JPEG file truncated in its frame header")
                bits, h, w, ch = struct.unpack(">BHHB", body)
                return w, h, bits, ch
            f.seek(length - 2, 1)


def read_image_header(path: str):
    """``(width, height, bit_depth, channels)`` of a PNG or JPEG file (by signature, not by name)."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\xff\xd8":
        return read_jpeg_header(path)
    return read_png_header(path)


def header_problems(rgb_path: str, depth_path: str, size=(INPUT_HEIGHT, INPUT_WIDTH), at_least: bool = False) -> list[str]:
    """Problems visible from the two headers (cheap: a few bytes per file). RGB: 8-bit PNG (3 or 4 channels) or
    JPEG (3 channels); depth: 16-bit single-channel PNG. ``size`` (H, W): the expected size, or with ``at_least``
    the smallest allowed size (frames cropped to ``size``, e.g. KITTI's 352x1216)."""
    out, hw = [], {}
    for kind, path, want_bits, want_ch in (("rgb", rgb_path, 8, (3, 4)), ("depth", depth_path, 16, (1,))):
        try:
            w, h, bits, ch = read_image_header(path) if kind == "rgb" else read_png_header(path)
        except (OSError, ValueError) as e:
            out.append(f"{path}: {e}")
            continue
        hw[kind] = (h, w)
        if bits != want_bits or ch not in want_ch:
            want = "8-bit RGB" if kind == "rgb" else "16-bit single-channel"
            fmt = "JPEG" if path.lower().endswith((".jpg", ".jpeg")) else "PNG"
            out.append(f"{path}: {bits}-bit {ch}-channel {fmt}, expected {want}")
    if len(hw) == 2 and hw["rgb"] != hw["depth"]:
        out.append(f"{rgb_path}: size {hw['rgb'][0]}x{hw['rgb'][1]} != depth {depth_path} "
                   f"{hw['depth'][0]}x{hw['depth'][1]}")
    elif size is not None and "depth" in hw:
        h, w = hw["depth"]
        if at_least and (h < size[0] or w < size[1]):
            out.append(f"{depth_path}: size {h}x{w}, smaller than the {size[0]}x{size[1]} frame crop")
        elif not at_least and (h, w) != tuple(size):
            out.append(f"{depth_path}: size {h}x{w}, expected {size[0]}x{size[1]}")
    return out


def check_headers(pairs, size=(INPUT_HEIGHT, INPUT_WIDTH), at_least: bool = False) -> list[str]:
    """Header problems of every ``(stem, rgb, depth)`` pair."""
    out = []
    for _, r, d in pairs:
        out += header_problems(r, d, size, at_least)
    return out


# ------------------------------------------------------------------------------------------------ full check


def check_pair(rgb_path, depth_path, size=(INPUT_HEIGHT, INPUT_WIDTH), max_depth=MAX_DEPTH, min_valid=0.01,
               depth_scale=DEPTH_SCALE, at_least=False, histogram=False):
    """Full check of one pair -> dict(errors=[...], warnings=[...], valid_fraction, dmin, dmax); ``depth_scale``
    stored values per metre; ``histogram``: also ``hist``, the counts of the raw uint16 depth values (for the
    scale check of `scale_problem`)."""

    res = dict(rgb=rgb_path, depth=depth_path, errors=header_problems(rgb_path, depth_path, size, at_least),
               warnings=[], valid_fraction=float("nan"), dmin=float("nan"), dmax=float("nan"))
    for path in (rgb_path, depth_path):
        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            res["errors"].append(f"{path}: cannot decode ({type(e).__name__}: {e})")
            continue
        if path == depth_path and not res["errors"]:
            if histogram:
                res["hist"] = np.bincount(arr.ravel().astype(np.int64), minlength=65536)[:65536]
            d = arr.astype(np.float32) / depth_scale
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


def new_entry() -> dict:
    """One split's report entry (see `check_dataset`)."""
    return dict(pairs=0, errors=[], warnings=[], bad_files=[], valid_fraction=[], dmin=np.nan, dmax=np.nan)


def _add_error(entry, msg):
    entry["errors"].append(msg)
    f = msg.split(": ", 1)[0]
    if f not in entry["bad_files"]:
        entry["bad_files"].append(f)


def check_pairs(entry, pairs, desc="check", workers=2, progress=True, size=(INPUT_HEIGHT, INPUT_WIDTH),
                max_depth=MAX_DEPTH, min_valid=0.01, depth_scale=DEPTH_SCALE, at_least=False, histogram=False):
    """`check_pair` of every pair into ``entry`` (errors, warnings, bad files, valid fractions, depth range);
    with ``histogram`` the summed raw depth histogram goes to ``entry["hist"]`` (int64 [65536])."""

    def one(p):
        return check_pair(p[1], p[2], size, max_depth, min_valid, depth_scale, at_least, histogram)

    hist = np.zeros(65536, np.int64) if histogram else None
    with ThreadPoolExecutor(max(1, workers)) as ex:
        for r in track(ex.map(one, pairs), total=len(pairs), desc=desc, unit="pair",
                       disable=None if progress else True):
            entry["warnings"] += r["warnings"]
            for msg in r["errors"]:
                _add_error(entry, msg)
            if hist is not None and "hist" in r:
                hist += r.pop("hist")
            if np.isfinite(r["valid_fraction"]):
                entry["valid_fraction"].append(r["valid_fraction"])
            if np.isfinite(r["dmin"]):
                entry["dmin"] = np.nanmin([entry["dmin"], r["dmin"]])
                entry["dmax"] = np.nanmax([entry["dmax"], r["dmax"]])
    if hist is not None:
        entry["hist"] = hist
    return entry


CANDIDATE_SCALES = (1000.0, 256.0, 5000.0, 100.0, 10.0, 1.0)  # mm, KITTI, TUM, cm, dm, m


def percentile_of_hist(hist, q: float) -> float:
    """The ``q``-quantile (0..1) of the raw values counted in ``hist`` (value 0 = invalid, left out)."""
    h = np.asarray(hist, np.int64).copy()
    h[0] = 0
    total = int(h.sum())
    if total == 0:
        return float("nan")
    return float(np.searchsorted(np.cumsum(h), q * total))


def scale_problem(hist, depth_scale, max_depth, expect=None, where="", dataset="", beyond_tol=0.05):
    """One line if the raw depth values of a split (``hist`` of uint16 values) look stored at another scale
    than ``depth_scale`` (values per metre), naming the likely right scale; None if they look right.

    Two signs: more than ``beyond_tol`` of the valid values lie beyond ``max_depth`` (the scale is too small,
    e.g. NYU's x1000 read as KITTI's x256), or the 99.9th percentile of the valid depth lies outside ``expect``
    (lo, hi metres, the preset's plausible range: e.g. KITTI's x256 read as x1000 gives ~20 m instead of ~80 m).
    """
    h = np.asarray(hist, np.int64)
    valid = int(h[1:].sum())
    if valid == 0:
        return None
    p999 = percentile_of_hist(h, 0.999) / depth_scale
    top = int(min(65535, np.floor(max_depth * depth_scale)))
    beyond = float(h[top + 1:].sum()) / valid
    lo, hi = expect if expect is not None else (0.0, max_depth)
    if beyond <= beyond_tol and (expect is None or lo <= p999 <= hi):
        return None
    raw = p999 * depth_scale
    fits = [c for c in CANDIDATE_SCALES if c != depth_scale and (lo if expect else 0.0) <= raw / c <= hi
            and raw / c <= max_depth * 1.05]
    mid = math.sqrt((lo if expect else max_depth / 10.0) * hi)
    best = min(fits, key=lambda c: abs(math.log(raw / c / mid))) if fits else None
    why = (f"{100 * beyond:.1f}% of the valid pixels are beyond the {max_depth:g} m range" if beyond > beyond_tol
           else f"the 99.9th percentile of the valid depth is {p999:.2f} m, expected {lo:g}..{hi:g} m")
    hint = (f"; the likely right scale is --depth_scale={best:g} (99.9th percentile {raw / best:.2f} m)"
            if best is not None else "; no common scale (1000, 256, 5000, 100, 10, 1) fits")
    if beyond > beyond_tol:
        hint += f", unless the scenes are deeper than the {max_depth:g} m range (then raise --max_depth)"
    name = f" for --dataset={dataset}" if dataset else ""
    return f"{where}: depth values implausible{name} read as value / {depth_scale:g} per metre: {why}{hint}"


def check_dataset(root, splits=None, size=(INPUT_HEIGHT, INPUT_WIDTH), max_depth=MAX_DEPTH, min_valid=0.01,
                  workers=2, progress=True):
    """Check every split of the pairs layout; returns ``{split: dict(pairs, bad_files, errors, warnings,
    stats...)}``."""

    report = {}
    for split in splits or find_splits(root):
        split_dir = os.path.normpath(os.path.join(root, split))
        entry = new_entry()
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
        check_pairs(entry, pairs, f"check {split}", workers, progress, size, max_depth, min_valid)
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
