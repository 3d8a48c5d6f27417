"""A real RGB-D test frame, offline: the Middlebury 2014 "Motorcycle" scene shipped with scikit-image.

    convert("data/middlebury")        # or: python -m litedepth_tf.middlebury --out data/middlebury

`skimage.data.stereo_motorcycle()` returns the left view, the right view and the ground-truth disparity of the left
view; the files are part of scikit-image's package data (no download, works offline; checked with scikit-image
0.26). They are the benchmark's full-size images (2964x2000) **downsampled by 4** to 741x500, and the disparity
is in pixels **of the downsampled images** (max ~60 = the benchmark's ndisp 270 / 4), so the calibration must be
the quarter-resolution one. The benchmark's `calib.txt` for Motorcycle has f = 3979.911 px, doffs = 124.343 px,
baseline = 193.001 mm at full resolution; divided by 4 (the baseline is a length and stays):

    depth_mm = baseline * f / (disparity + doffs),   f = 994.978 px, doffs = 31.086 px, baseline = 193.001 mm

(identical to the full-resolution formula with 4x the disparity; `tests/test_middlebury.py` checks both). Pixels
without ground truth (inf, NaN, <= 0 disparity) get depth 0 (invalid, MAI convention). The scene spans ~2.1-5 m.

To the MAI layout: the 741x500 (1.48:1) frame is centre-cropped to 4:3 (667x500, 37 columns off each side; the
aspect ratio is kept so the geometry is not stretched), then resized to 640x480: RGB bilinear (anti-aliased),
depth nearest (no mixing across edges). Written as `ROOT/{local_val,train}/{rgb,depth}/motorcycle.png` (RGB
8-bit, depth uint16 millimetres; the train copy lets the data-set tools and a baseline run on the root), plus
`ROOT/middlebury.json` with the constants and the intrinsics at 480x640. All files are written atomically.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import DEPTH_SCALE, INPUT_HEIGHT, INPUT_WIDTH
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.common.images import write_png

# Middlebury 2014 Motorcycle calibration at full resolution (calib.txt) and the downsampling of skimage's copy.
FULL_RES_FOCAL_PX = 3979.911
FULL_RES_DOFFS_PX = 124.343
BASELINE_MM = 193.001
SKIMAGE_DOWNSAMPLE = 4
FOCAL_PX = 994.978  # = FULL_RES_FOCAL_PX / 4, valid for skimage's 741x500 images and disparities
DOFFS_PX = 31.086  # = FULL_RES_DOFFS_PX / 4
CX_PX, CY_PX = 311.193, 254.877  # principal point of the left view at 741x500
STEM = "motorcycle"
SPLITS = ("local_val", "train")
MANIFEST = "middlebury.json"


def load_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """(left RGB uint8 [500, 741, 3], disparity float32 [500, 741] in pixels at that size; inf = no GT)."""
    try:
        from skimage.data import stereo_motorcycle
    except ImportError as err:
        raise RuntimeError("scikit-image is needed for the Middlebury motorcycle (pip install -r requirements.txt)") \
            from err
    try:
        left, _, disp = stereo_motorcycle()
    except Exception as err:  # noqa: BLE001 - an install without the package data would try to download
        raise RuntimeError(f"skimage.data.stereo_motorcycle() failed ({type(err).__name__}: {err}); its files ship "
                           "in scikit-image's package data (skimage/data/motorcycle_*.png, motorcycle_disp.npz): "
                           "reinstall scikit-image==0.26.0 from the wheel") from err
    return np.asarray(left, np.uint8), np.asarray(disp, np.float32)


def disparity_to_depth(disparity, focal_px: float = FOCAL_PX, doffs_px: float = DOFFS_PX,
                       baseline_mm: float = BASELINE_MM) -> np.ndarray:
    """Disparity (pixels) -> depth in metres; inf / NaN / <= 0 disparity -> 0 (invalid)."""
    d = np.asarray(disparity, np.float64)
    valid = np.isfinite(d) & (d > 0)
    depth_mm = baseline_mm * focal_px / np.where(valid, d + doffs_px, 1.0)
    return np.where(valid, depth_mm / 1000.0, 0.0).astype(np.float32)


def crop_box(height: int, width: int, aspect: float = INPUT_WIDTH / INPUT_HEIGHT) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the centred crop with the target aspect ratio (width / height)."""
    if width / height > aspect:
        w = int(round(height * aspect))
        return 0, (width - w) // 2, height, w
    h = int(round(width / aspect))
    return (height - h) // 2, 0, h, width


def to_mai_frame(rgb, depth, size=(INPUT_HEIGHT, INPUT_WIDTH), crop: bool = True):
    """-> (RGB uint8 [480, 640, 3], depth uint16 mm [480, 640], (fx, fy, cx, cy) at 480x640)."""

    h0, w0 = depth.shape
    top, left, h, w = crop_box(h0, w0) if crop else (0, 0, h0, w0)
    rgb, depth = rgb[top:top + h, left:left + w], depth[top:top + h, left:left + w]
    H, W = size
    rgb = np.asarray(Image.fromarray(rgb).resize((W, H), Image.BILINEAR), np.uint8)
    depth = np.asarray(Image.fromarray(depth.astype(np.float32), "F").resize((W, H), Image.NEAREST), np.float32)
    mm = np.clip(np.round(depth * DEPTH_SCALE), 0, 65535).astype(np.uint16)
    sx, sy = W / w, H / h
    intr = (FOCAL_PX * sx, FOCAL_PX * sy, (CX_PX - left + 0.5) * sx - 0.5, (CY_PX - top + 0.5) * sy - 0.5)
    return rgb, mm, tuple(float(v) for v in intr)


def convert(out_root, splits=SPLITS, crop: bool = True) -> dict:
    """Writes the MAI-layout copy (see the module docstring); returns the manifest."""

    left, disp = load_motorcycle()
    depth = disparity_to_depth(disp)
    rgb, mm, intr = to_mai_frame(left, depth, crop=crop)
    written = []
    for split in splits:
        written.append(write_png(os.path.join(out_root, split, "rgb", STEM + ".png"), rgb))
        written.append(write_png(os.path.join(out_root, split, "depth", STEM + ".png"), mm))
    valid = mm > 0
    manifest = dict(
        source="skimage.data.stereo_motorcycle (Middlebury 2014 Motorcycle, left view, downsampled x4: 741x500)",
        focal_px=FOCAL_PX, doffs_px=DOFFS_PX, baseline_mm=BASELINE_MM,
        full_resolution=dict(focal_px=FULL_RES_FOCAL_PX, doffs_px=FULL_RES_DOFFS_PX, downsample=SKIMAGE_DOWNSAMPLE),
        crop=dict(zip(("top", "left", "height", "width"), crop_box(*disp.shape))) if crop else None,
        size=[INPUT_HEIGHT, INPUT_WIDTH], intrinsics_480x640=list(intr), splits=list(splits), files=written,
        valid_fraction=float(valid.mean()), depth_min_m=float(mm[valid].min() / DEPTH_SCALE),
        depth_max_m=float(mm[valid].max() / DEPTH_SCALE), depth_median_m=float(np.median(mm[valid]) / DEPTH_SCALE))
    atomic_write_json(os.path.join(out_root, MANIFEST), manifest)
    return manifest
