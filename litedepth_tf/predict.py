"""Depth maps for images, folders and videos with a trained LiteDepth model (`.weights.h5` or `.tflite`).

    python -m litedepth_tf.predict --tflite artifacts/litedepth_int8.tflite --input photo.jpg --out out/
    python -m litedepth_tf.predict --weights runs/demo/best.weights.h5 --input frames/ --out out/ --colorbar \\
        --side_by_side
    python -m litedepth_tf.predict --tflite m.tflite --input clip.mp4 --out out/ --range fixed --vmin 0 --vmax 10

Outputs (every file written atomically; `<stem>` is the input's file name without extension, or the full name
with its dot replaced by `_` when two inputs in a folder share a stem, e.g. `a.jpg` and `a.png`):

* an image -> `OUT/depth/<stem>.png`: uint16 depth in **millimetres** (MAI convention: round(depth*1000),
  clipped to 65535; OUT/depth is an MAI `depth/` folder); `OUT/color/<stem>.png`: colour-mapped depth (unless
  `--nocolor`, the fastest); `OUT/side_by_side/<stem>.png`: RGB | depth (`--side_by_side`); `OUT/ply/<stem>.ply`:
  the coloured point cloud (`--ply`, binary little-endian PLY, metres, camera frame x right / y down / z forward;
  `--intrinsics fx,fy,cx,cy` at the input's size, default the MAI camera scaled to it).
* a video (.mp4 .avi .mov .mkv .gif) -> `OUT/<stem>_depth.mp4`: colour-mapped depth video (H.264);
  `OUT/<stem>_side_by_side.mp4` (`--side_by_side`); with `--save_frames` also every frame as
  `OUT/depth/<stem>_NNNNNN.png` + `OUT/color/<stem>_NNNNNN.png` (NNNNNN = frame index from 0); with `--ply` every
  frame's `OUT/ply/<stem>_NNNNNN.ply`.

Depth PNGs and colour maps have the input's own size; `--colorbar` adds a labelled colour bar to the right of the
colour map. Colour range: `--range auto` is the 2nd..98th percentile of each image's prediction (a video keeps its
first frame's), `--range fixed` is `--vmin`..`--vmax` (metres). Inputs: grayscale images are replicated to RGB,
alpha dropped, 16-bit images scaled to 8-bit (a note is printed per file), JPEG EXIF orientation applied; a folder
is read non-recursively, other files are listed as skipped. Reading, the network and writing overlap on
`--workers` threads each (`litedepth_tf.inference.predictor`); `export/benchmark_predict.py` measures predict
against the network alone. A `.tflite` model runs without TensorFlow.

Exit status: an unreadable file is reported (naming it) and skipped, the rest is written. 0 if at least one input
was written, 1 if every input failed, 2 for a usage problem (model not loadable or with the wrong signature, input
missing, unsupported extension, empty folder, unknown colour map, output folder not writable, a full disk).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from absl import flags

from litedepth_tf.api import load
from litedepth_tf.common import cli
from litedepth_tf.common.files import check_writable
from litedepth_tf.common.pointcloud import parse_intrinsics
from litedepth_tf.data import datasets
from litedepth_tf.inference.predictor import Predictor
from litedepth_tf.inference.readers import list_inputs
from litedepth_tf.inference.writers import check_colormap
from litedepth_tf.tflite.model_card import card_path, describe


def define_flags(fv):
    d = dict(flag_values=fv)
    cli.define_model_flags(fv)
    cli.define_threads_flag(fv)
    datasets.define_size_flags(fv)
    flags.DEFINE_string("input", None, "An image, a video, or a folder of images / videos.", **d)
    flags.DEFINE_string("out", None, "Output folder.", **d)
    flags.DEFINE_string("colormap", "magma", "Matplotlib colour map for the colour-mapped depth.", **d)
    flags.DEFINE_enum("range", "auto", ["auto", "fixed"], "Colour range: auto = 2..98th percentile of each image "
                      "(a video keeps its first frame's); fixed = --vmin..--vmax.", **d)
    flags.DEFINE_float("vmin", 0.0, "Fixed range: metres at the bottom of the colour map.", **d)
    flags.DEFINE_float("vmax", 10.0, "Fixed range: metres at the top of the colour map.", **d)
    flags.DEFINE_bool("colorbar", False, "Add a labelled colour bar to colour maps / videos.", **d)
    flags.DEFINE_bool("side_by_side", False, "Also write RGB | depth images / videos.", **d)
    flags.DEFINE_float("fps", None, "Output video frame rate (default: the input's).", **d)
    flags.DEFINE_bool("save_frames", False, "Videos: also write every frame's PNGs.", **d)
    flags.DEFINE_bool("color", True, "Write colour-mapped depth PNGs (OUT/color/; --nocolor: only the 16-bit depth "
                      "PNGs, the fastest). Videos are always colour-mapped.", **d)
    flags.DEFINE_bool("ply", False, "Also write a coloured point cloud per image / video frame (OUT/ply/<stem>.ply, "
                      "binary little-endian PLY, metres).", **d)
    flags.DEFINE_string("intrinsics", None, "--ply: camera intrinsics fx,fy,cx,cy in pixels at the input's own size "
                        "(default: the MAI camera 518.8579,519.4696,320,240 at 480x640, scaled to each input).", **d)
    flags.DEFINE_integer("png_level", 1, "zlib level of the PNGs written (1 = fast, the default; 0 = stored, the "
                         "fastest and ~4x larger; 9 = smallest, slow). The pixels are the same at every level.",
                         **d)
    flags.DEFINE_integer("workers", None, "Reader threads and encoder threads (each) around the network (default: "
                         "the CPU count, at most 4); 0 = one file after another in one thread.", **d)
    return fv


def check_flags(fv) -> None:
    """Every flag that can be checked before the model is loaded (one line naming the flag)."""
    cli.model_path(fv)
    for name in ("input", "out"):
        if not fv[name].value:
            raise cli.InputError(f"--{name} is required")
    check_colormap(fv.colormap)
    if fv.range == "fixed" and not fv.vmax > fv.vmin:
        raise cli.InputError(f"--vmax ({fv.vmax}) must be larger than --vmin ({fv.vmin})")
    if fv.intrinsics:
        try:
            parse_intrinsics(fv.intrinsics)
        except ValueError as err:
            raise cli.InputError(f"--intrinsics: {err}") from None
    if fv.workers is not None and fv.workers < 0:
        raise cli.InputError(f"--workers must be >= 0, got {fv.workers}")
    if not 0 <= fv.png_level <= 9:
        raise cli.InputError(f"--png_level must be 0..9, got {fv.png_level}")


def _print(msg, file=None):
    print(msg, file=file or sys.stdout, flush=True)


def main(argv, fv):
    check_flags(fv)
    paths, skipped = list_inputs(fv.input)
    check_writable(fv.out, what="output folder")  # before the model is loaded, not at the first write
    try:
        model = load(cli.model_path(fv), model=fv.model, num_threads=fv.threads,
                     input_size=datasets.frame_size_from_flags(fv, default=None))
    except ValueError as err:
        raise cli.InputError(str(err)) from err
    for s in skipped:
        _print(f"skipping {s}: unsupported extension", file=sys.stderr)
    if model.card is not None:
        _print(f"model card {card_path(model.path)}: {describe(model.card)}")
    pred = Predictor(model, fv.out, fps=fv.fps, save_frames=fv.save_frames, log=_print, workers=fv.workers,
                     colormap=fv.colormap, range_mode=fv.range, vmin=fv.vmin, vmax=fv.vmax,
                     with_colorbar=fv.colorbar, with_side_by_side=fv.side_by_side, with_color=fv.color,
                     with_ply=fv.ply, intrinsics=fv.intrinsics, png_level=fv.png_level)
    t0 = time.perf_counter()
    written, failed = pred.run(paths)
    dt = time.perf_counter() - t0
    lat = np.asarray(pred.latencies_ms[1:] or pred.latencies_ms, np.float64)
    n = len(pred.latencies_ms)
    if n:
        _print(f"{n} frame(s) from {len(paths) - len(failed)}/{len(paths)} input(s) -> {fv.out} "
               f"({len(written)} files); mean network latency {lat.mean():.1f} ms ({model.kind}, first call "
               f"excluded), {n / dt:.2f} frames/s end to end")
    if failed:
        _print(f"{len(failed)} input(s) failed:\n  " + "\n  ".join(f"{p}: {m}" for p, m in failed), file=sys.stderr)
    return cli.EXIT_FAILED if len(failed) == len(paths) else cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
