"""A real photo, offline: the Middlebury 2014 "Motorcycle" frame in the MAI layout, and a figure of a model on it.

    python -m litedepth_tf.middlebury --out data/middlebury
    python -m litedepth_tf.middlebury --figure docs/middlebury_demo.png --weights runs/demo/best.weights.h5 \\
        --data_root data/middlebury

``--out`` converts scikit-image's copy of the scene (`litedepth_tf.data.middlebury`: disparity -> millimetres,
centre crop to 4:3, 640x480). ``--figure`` draws input | prediction | ground truth with one colour scale (the
2..98th percentile of the valid GT, invalid GT in blue) and a colour bar, titled with the frame's si-RMSE.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags
from PIL import Image, ImageDraw

from litedepth_tf.api import load
from litedepth_tf.common import cli
from litedepth_tf.common.colormap import _font, colorbar, colorize, depth_scale
from litedepth_tf.common.constants import DEPTH_SCALE
from litedepth_tf.common.images import write_png
from litedepth_tf.data.middlebury import STEM, convert
from litedepth_tf.evaluation.metrics import image_metrics


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """A white title strip above `img`."""
    fs = max(12, img.shape[0] // 24)
    strip = Image.new("RGB", (img.shape[1], int(fs * 1.8)), (255, 255, 255))
    ImageDraw.Draw(strip).text((img.shape[1] // 2, strip.height // 2), text, fill=(0, 0, 0), font=_font(fs),
                               anchor="mm")
    return np.concatenate([np.asarray(strip), img], axis=0)


def make_figure(model_path, root, out_png, split: str = "local_val", stem: str = STEM, cmap: str = "magma",
                model: str = "student") -> dict:
    """input | prediction | ground truth at 480x640 with one colour scale and a colour bar -> `out_png` (atomic).
    Returns the frame's MAI metrics."""
    rgb_path = os.path.join(root, split, "rgb", stem + ".png")
    depth_path = os.path.join(root, split, "depth", stem + ".png")
    for p in (rgb_path, depth_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} not found: run `python -m litedepth_tf.middlebury --out {root}` first")
    rgb = np.asarray(Image.open(rgb_path).convert("RGB"))
    gt = np.asarray(Image.open(depth_path), np.float32) / DEPTH_SCALE
    pred = load(model_path, model=model).predict(rgb)
    valid = gt > 0
    vmin, vmax = depth_scale(gt, valid)
    metrics = {k: float(v) for k, v in (image_metrics(pred, gt) or {}).items()}
    name = os.path.basename(os.fspath(model_path))
    si = next((v for k, v in metrics.items() if "si" in k.lower() and "rmse" in k.lower()), None)
    title = f"prediction ({name}" + (f", si-RMSE {si:.3f})" if si is not None else ")")
    panels = [_label(rgb, "input"), _label(colorize(pred, vmin, vmax, cmap), title),
              _label(colorize(gt, vmin, vmax, cmap, mask=valid), "ground truth (Middlebury, blue = no GT)")]
    h = panels[0].shape[0]
    bar = colorbar(rgb.shape[0], vmin, vmax, cmap)
    bar = np.concatenate([np.full((h - bar.shape[0], bar.shape[1], 3), 255, np.uint8), bar], axis=0)
    gap = np.full((h, 8, 3), 255, np.uint8)
    figure = np.concatenate([panels[0], gap, panels[1], gap, panels[2], bar], axis=1)
    write_png(out_png, figure)
    return metrics


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("out", None, "Convert: output data root (gets local_val/ and train/).", **d)
    flags.DEFINE_bool("crop", True, "Convert: centre-crop 741x500 to 4:3 (--nocrop stretches it).", **d)
    flags.DEFINE_string("figure", None, "Figure: output PNG (input | prediction | ground truth).", **d)
    cli.define_model_flags(fv)
    flags.DEFINE_string("data_root", "data/middlebury", "Figure: the converted data root (default: --out).", **d)
    flags.DEFINE_string("colormap", "magma", "Figure: matplotlib colour map.", **d)
    return fv


def main(argv, fv=None) -> int:
    fv = flags.FLAGS if fv is None else fv
    if not fv.out and not fv.figure:
        raise cli.InputError("give --out (convert) and/or --figure with --weights or --tflite")
    path = cli.model_path(fv) if fv.figure else None
    try:
        if fv.out:
            man = convert(fv.out, crop=fv.crop)
            print(f"wrote {len(man['files'])} files under {fv.out}: depth {man['depth_min_m']:.2f}-"
                  f"{man['depth_max_m']:.2f} m (median {man['depth_median_m']:.2f}), "
                  f"{100 * man['valid_fraction']:.1f}% valid")
        if fv.figure:
            metrics = make_figure(path, fv.out or fv.data_root, fv.figure, cmap=fv.colormap,
                                  model=fv.model)
            print(f"wrote {fv.figure} ({', '.join(f'{k} {v:.4g}' for k, v in metrics.items())})")
    except RuntimeError as err:  # scikit-image's data files missing
        raise cli.InputError(str(err)) from None
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
