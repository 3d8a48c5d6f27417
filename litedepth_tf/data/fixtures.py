"""Small data sets in each real format (NYU BTS layout, KITTI depth, DIODE native), made from synthetic frames.

For the tests and the pipeline benchmark (``export/benchmark_pipeline.py --dataset``): the files, folder trees,
split files, units and quirks of the real sets (KITTI's sparse LiDAR ground truth with ``None`` lines and varying
raw frame sizes, DIODE's ``.npy`` depth and validity masks, NYU's JPEG frames), at a few frames each. The content
is the ray-cast synthetic scene (`data.synthetic.render_frame`) rendered at half resolution and upsampled (4x
cheaper; sharpness does not matter here), with depth rescaled to each set's range.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from litedepth_tf.common.files import atomic_write_bytes, atomic_write_text
from litedepth_tf.common.images import png_bytes
from litedepth_tf.data import datasets
from litedepth_tf.data.convert import convert_diode
from litedepth_tf.data.synthetic import render_frame


def frame(seed: int, index: int, hw, intrinsics=None, max_depth_m: float | None = None):
    """(rgb uint8 [H, W, 3], depth float32 metres [H, W], 0 = invalid) of a synthetic scene at size ``hw``;
    ``max_depth_m`` rescales the depth so that its maximum is that many metres."""
    h, w = int(hw[0]), int(hw[1])
    sh, sw = max(32, h // 2), max(32, w // 2)
    k = intrinsics or (0.81 * sw, 0.81 * sw, (sw - 1) / 2, (sh - 1) / 2)
    rgb, mm = render_frame(seed, index, "train", sh, sw, intrinsics=k)
    rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    depth = np.asarray(Image.fromarray(mm.astype(np.float32) / 1000.0, "F").resize((w, h), Image.NEAREST),
                       np.float32)
    if max_depth_m is not None and depth.max() > 0:
        depth = depth * (float(max_depth_m) / float(depth.max()))
    return rgb, depth


def _jpeg_bytes(rgb, quality=95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def to_uint16(depth_m, scale) -> np.ndarray:
    """Metres -> uint16 at ``scale`` values per metre (0 stays 0; beyond the uint16 range -> 0 = invalid)."""
    v = np.round(np.asarray(depth_m, np.float64) * scale)
    return np.where((v > 0) & (v <= 65535), v, 0).astype(np.uint16)


def write_nyu(root, n: int = 3, seed: int = 0, split: str = "sync", scenes=("kitchen_0028b", "office_0003"),
              rgb_ext: str = ".jpg", split_name: str = "nyu_train.txt") -> dict:
    """NYU Depth v2 in the BTS layout: ``root/<split>/<scene>/rgb_<id>.jpg`` + ``sync_depth_<id>.png`` (x1000,
    480x640) and a split file ``root/<split_name>`` with lines ``/<scene>/rgb_<id>.jpg /<scene>/sync_depth_<id>.png
    518.8579`` (paths relative to ``root/<split>``, leading slash as the toolbox ships them)."""
    root = os.fspath(root)
    lines = []
    for i in range(n):
        scene = scenes[i % len(scenes)]
        rgb, depth = frame(seed, i, (480, 640), max_depth_m=9.0)
        folder = os.path.join(root, split, scene)
        name = f"rgb_{i:05d}{rgb_ext}"
        atomic_write_bytes(os.path.join(folder, name), _jpeg_bytes(rgb) if rgb_ext == ".jpg" else png_bytes(rgb))
        atomic_write_bytes(os.path.join(folder, f"sync_depth_{i:05d}.png"), png_bytes(to_uint16(depth, 1000.0)))
        lines.append(f"/{scene}/{name} /{scene}/sync_depth_{i:05d}.png {datasets.NYU_INTRINSICS[0]}")
    split_file = os.path.join(root, split_name)
    atomic_write_text(split_file, "\n".join(lines) + "\n")
    return dict(root=root, base=os.path.join(root, split), split_file=split_file, n=n)


KITTI_DRIVE = "2011_09_26_drive_0001_sync"


def lidar_mask(hw, fraction: float = 0.05, seed: int = 0) -> np.ndarray:
    """A KITTI-like validity mask: scan lines in the lower ~2/3 of the frame (none in the sky), random gaps,
    about ``fraction`` of all pixels valid."""
    h, w = hw
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), bool)
    rows = np.unique(np.linspace(int(0.3 * h), h - 1, 64).round().astype(int))
    keep = min(1.0, fraction * h / len(rows))
    mask[rows] = rng.random((len(rows), w)) < keep
    return mask


def write_kitti(root, n: int = 3, seed: int = 0, raw_sizes=((375, 1242), (376, 1241), (370, 1224)),
                fraction: float = 0.05, none_lines: int = 1, split_name: str = "kitti_eigen_test.txt") -> dict:
    """KITTI depth in the BTS layout: RGB ``root/<date>/<drive>/image_02/data/<f>.png`` (raw sizes as KITTI's
    drives have them), ground truth ``root/data_depth_annotated/train/<drive>/proj_depth/groundtruth/image_02/
    <f>.png`` (uint16 depth x 256, 0 = no LiDAR return, ~``fraction`` valid), and a split file with ``rgb depth
    721.5377`` lines relative to ``root`` (plus ``none_lines`` frames without ground truth: ``None``)."""
    root = os.fspath(root)
    date = KITTI_DRIVE[:10]
    lines = []
    for i in range(n + none_lines):
        hw = raw_sizes[i % len(raw_sizes)]
        rgb, depth = frame(seed, i, hw, max_depth_m=78.0)
        name = f"{i:010d}.png"
        rgb_rel = f"{date}/{KITTI_DRIVE}/image_02/data/{name}"
        atomic_write_bytes(os.path.join(root, rgb_rel), png_bytes(rgb))
        if i >= n:
            lines.append(f"{rgb_rel} None {datasets.KITTI_INTRINSICS[0]}")
            continue
        gt = np.where(lidar_mask(hw, fraction, seed + i), depth, 0.0)
        depth_rel = f"{KITTI_DRIVE}/proj_depth/groundtruth/image_02/{name}"
        atomic_write_bytes(os.path.join(root, "data_depth_annotated", "train", depth_rel),
                           png_bytes(to_uint16(gt, 256.0)))
        lines.append(f"{rgb_rel} {depth_rel} {datasets.KITTI_INTRINSICS[0]}")
    split_file = os.path.join(root, split_name)
    atomic_write_text(split_file, "\n".join(lines) + "\n")
    return dict(root=root, split_file=split_file, n=n, none_lines=none_lines)


def write_diode(root, n: int = 2, seed: int = 0, hw=(768, 1024), split: str = "val") -> dict:
    """DIODE's native layout: ``root/<split>/indoors/scene_<s>/scan_<k>/<name>.png`` with ``<name>_depth.npy``
    (float32 metres, HxWx1) and ``<name>_depth_mask.npy`` (float32 0/1, HxW) beside it; a band of each frame is
    masked out (and its depth set to garbage, which the mask must remove)."""
    root = os.fspath(root)
    files = []
    for i in range(n):
        rgb, depth = frame(seed, i, hw, max_depth_m=12.0)
        folder = os.path.join(root, split, "indoors", f"scene_{i:05d}", f"scan_{i:05d}")
        name = f"{i:05d}_{i:05d}_indoors_000_010"
        mask = (depth > 0).astype(np.float32)
        mask[: hw[0] // 8] = 0.0
        bad = depth.copy()
        bad[: hw[0] // 8] = 123.0  # what the mask removes
        os.makedirs(folder, exist_ok=True)
        atomic_write_bytes(os.path.join(folder, name + ".png"), png_bytes(rgb))
        np.save(os.path.join(folder, name + "_depth.npy"), bad[..., None].astype(np.float32))
        np.save(os.path.join(folder, name + "_depth_mask.npy"), mask)
        files.append(os.path.join(folder, name + ".png"))
    return dict(root=os.path.join(root, split), files=files, n=n)


def write_fixture(name: str, root, n: int = 3, seed: int = 0) -> dict:
    """The fixture of preset ``name`` (nyu, kitti, diode) under ``root``: what the preset's command needs
    (``data_root``, ``split`` or ``split_file``, and for diode the converted PNG layout)."""
    if name == "nyu":
        info = write_nyu(root, n, seed)
        return dict(data_root=info["root"], split="sync", split_file=None, dataset="nyu")
    if name == "kitti":
        info = write_kitti(root, n, seed, none_lines=0)
        return dict(data_root=info["root"], split=None, split_file=info["split_file"], dataset="kitti")
    if name == "diode":
        info = write_diode(os.path.join(root, "native"), n, seed)
        out = os.path.join(root, "png")
        convert_diode(info["root"], out, split="val", progress=False)
        return dict(data_root=out, split="val", split_file=None, dataset="diode")
    raise ValueError(f"no fixture for dataset {name!r} (nyu, kitti, diode)")
