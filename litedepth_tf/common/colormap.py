"""Depth as colour: a matplotlib colour map on a chosen [vmin, vmax], the shared scale for GT and prediction, a
labelled colour bar, and RGB | depth composites (used by TensorBoard panels, `predict` and figures)."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont



INVALID_RGB = (40, 60, 160)


@functools.lru_cache(maxsize=32)
def _lut(name: str) -> np.ndarray:
    """The 256-entry RGB table of a colour map (read-only; built once per name, not per image)."""
    try:
        from matplotlib import colormaps

        lut = (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    except Exception:  # noqa: BLE001 - matplotlib missing: a grey ramp still shows structure
        ramp = np.arange(256, dtype=np.uint8)
        lut = np.stack([ramp, ramp, ramp], axis=1)
    lut.setflags(write=False)
    return lut


def colorize(values, vmin: float, vmax: float, cmap: str = "magma", mask=None) -> np.ndarray:
    """[H, W] (or [H, W, 1]) floats -> [H, W, 3] uint8 through a matplotlib colour map; `mask` False -> blue."""
    v = np.asarray(values, np.float32)
    if v.ndim == 3:
        v = v[..., 0]
    t = v - vmin  # then in place: the same float32 arithmetic as clip((v - vmin) / d, 0, 1) * 255, fewer copies
    t /= max(vmax - vmin, 1e-6)
    np.clip(t, 0.0, 1.0, out=t)
    np.nan_to_num(t, copy=False, nan=0.0)
    t *= 255
    out = np.take(_lut(cmap), t.astype(np.int32), axis=0)  # = lut[idx], 3x faster
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.ndim == 3:
            m = m[..., 0]
        out[~m] = INVALID_RGB
    return out


def depth_scale(gt, valid=None, lo: float = 2.0, hi: float = 98.0):
    """The shared [vmin, vmax] for GT and prediction: percentiles of the valid GT (or (0, 1) if none)."""
    gt = np.asarray(gt, np.float32)
    valid = gt > 0 if valid is None else np.asarray(valid) > 0
    vals = gt.ravel() if valid.all() else gt[valid]  # a prediction is valid everywhere: no masked copy
    if vals.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(vals, [lo, hi])
    return float(vmin), float(max(vmax, vmin + 1e-3))


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # noqa: BLE001 - no FreeType: the bitmap font
        return ImageFont.load_default()


def colorbar(height: int, vmin: float, vmax: float, cmap: str = "magma", ticks: int = 5) -> np.ndarray:
    """A vertical colour bar (vmax on top) with tick labels in metres, HxWx3 uint8 on white, drawn by hand."""
    fs = int(np.clip(height // 28, 9, 28))
    bar_w, pad = max(8, height // 30), max(4, fs // 2)
    labels = [f"{v:.2f} m" if abs(vmax - vmin) < 5 else f"{v:.1f} m" for v in np.linspace(vmax, vmin, ticks)]
    font = _font(fs)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(int(draw.textlength(s, font=font)) for s in labels)
    width = pad + bar_w + pad + text_w + pad
    img = Image.new("RGB", (width, height), (255, 255, 255))
    top, bottom = pad + fs // 2, max(pad + fs // 2 + 2, height - pad - fs // 2)
    ramp = np.linspace(vmax, vmin, bottom - top)[:, None].repeat(bar_w, axis=1)
    img.paste(Image.fromarray(colorize(ramp, vmin, vmax, cmap)), (pad, top))
    d = ImageDraw.Draw(img)
    for k, s in enumerate(labels):
        y = top + k * (bottom - top - 1) / max(ticks - 1, 1)
        d.line([(pad + bar_w, y), (pad + bar_w + pad // 2, y)], fill=(0, 0, 0))
        d.text((pad + bar_w + pad, y), s, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(img)


def colorize_depth(depth, vmin: float, vmax: float, cmap: str = "magma", with_colorbar: bool = False) -> np.ndarray:
    color = colorize(depth, vmin, vmax, cmap)
    if with_colorbar:
        color = np.concatenate([color, colorbar(color.shape[0], vmin, vmax, cmap)], axis=1)
    return color


def side_by_side(rgb, color) -> np.ndarray:
    rgb = np.clip(np.asarray(rgb), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, color], axis=1)
