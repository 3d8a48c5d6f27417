"""Depth maps for images, folders and videos with a trained LiteDepth model (`.weights.h5` or `.tflite`).

    python -m litedepth_tf.predict --tflite artifacts/litedepth_int8.tflite --input photo.jpg --out out/
    python -m litedepth_tf.predict --weights runs/demo/best.weights.h5 --input frames/ --out out/ --colorbar \\
        --side_by_side
    python -m litedepth_tf.predict --tflite m.tflite --input clip.mp4 --out out/ --range fixed --vmin 0 --vmax 10

Outputs (every file written atomically; `<stem>` is the input's file name without extension, or the full name
with its dot replaced by `_` when two inputs in a folder share a stem, e.g. `a.jpg` and `a.png`):

* an image -> `OUT/depth/<stem>.png`: uint16 depth in **millimetres** (MAI convention: round(depth*1000),
  clipped to 65535; readable by `data.pipeline.decode_pair`, and OUT/depth is an MAI `depth/` folder);
  `OUT/color/<stem>.png`: colour-mapped depth; `OUT/side_by_side/<stem>.png`: RGB | depth (`--side_by_side`).
* a video (.mp4 .avi .mov .mkv .gif) -> `OUT/<stem>_depth.mp4`: colour-mapped depth video (H.264);
  `OUT/<stem>_side_by_side.mp4` (`--side_by_side`); with `--save_frames` also every frame as
  `OUT/depth/<stem>_NNNNNN.png` + `OUT/color/<stem>_NNNNNN.png` (NNNNNN = frame index from 0).

Sizes: depth PNGs and colour maps have the input's own size (the network runs at 480x640; the depth is resized
back bilinearly, `litedepth_tf.api`); `--colorbar` adds a labelled colour bar to the right of the colour map
(so that image is wider). Videos are padded by one edge pixel to even sizes if needed (H.264 needs them).
Colour range: `--range auto` uses the 2nd..98th percentile of each image's prediction; for a video the range of
its first frame is kept for the whole video (no flicker). `--range fixed` uses `--vmin`/`--vmax` (metres).
`--fps` sets the output video frame rate (default: the input's).

Inputs: grayscale images are replicated to RGB, alpha channels dropped, 16-bit images scaled to 8-bit (a note is
printed per file); JPEG EXIF orientation is applied. A folder is read non-recursively; files with other
extensions are listed as skipped.

Errors and exit status: an unreadable file is reported (naming it) and skipped, the rest is written. Exit 0 if at
least one input was written, 1 if every input failed, 2 for a usage problem (model not loadable or with the wrong
signature, input missing, unsupported extension, empty folder, unknown colour map, output folder not writable);
each message names the file.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image, ImageOps

from litedepth_tf.api import load, prepare_image, restore_size
from litedepth_tf.common import cli
from litedepth_tf.common.colormap import colorize_depth, depth_scale, side_by_side
from litedepth_tf.common.files import atomic_path, check_writable
from litedepth_tf.common.images import depth_to_mm, write_png
from litedepth_tf.common.progress import progress_bar, track
from litedepth_tf.data import datasets
from litedepth_tf.data.check import read_png_header

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".gif")
FFMPEG_EXTS = (".mp4", ".avi", ".mov", ".mkv")


# ------------------------------------------------------------------------------------------ reading


def read_image(path) -> tuple[np.ndarray, list[str]]:
    """Image file -> (array as stored: HxW, HxWx2/3/4, uint8 / uint16 / ..., notes). 16-bit PNGs keep 16 bits."""

    path = os.fspath(path)
    notes = []
    try:
        bits = read_png_header(path)[2] if path.lower().endswith(".png") else 8
    except ValueError as err:
        raise ValueError(f"cannot read image {path!r}: {err}") from err
    if bits == 16:  # PIL would keep only the high byte of 16-bit RGB

        try:
            arr = tf.io.decode_png(tf.io.read_file(path), channels=0, dtype=tf.uint16).numpy()
        except Exception as err:  # noqa: BLE001 - name the file
            raise ValueError(f"cannot read image {path!r}: {err}") from err
        return arr, notes
    try:
        with Image.open(path) as im:
            im.load()
            fixed = ImageOps.exif_transpose(im)
            if fixed is not im and fixed.size != im.size:
                notes.append("EXIF orientation applied")
            im = fixed
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1",):
                im = im.convert("L")
            elif im.mode in ("LA", "La", "PA"):
                im = im.convert("LA")
            elif im.mode == "RGBa":
                im = im.convert("RGBA")
            elif im.mode not in ("L", "RGB", "RGBA", "I", "F") and not im.mode.startswith("I;16"):
                im = im.convert("RGB")
            arr = np.asarray(im)
    except Exception as err:  # noqa: BLE001 - any decoder failure names the file
        raise ValueError(f"cannot read image {path!r}: {type(err).__name__}: {err}") from err
    if arr.dtype != np.uint8 and np.issubdtype(arr.dtype, np.integer) and arr.size and arr.max() <= 65535:
        arr = arr.astype(np.uint16)
    return arr, notes


def list_inputs(path) -> tuple[list[str], list[str]]:
    """(supported files, skipped files) for a file or a folder; cli.InputError naming the path if none."""
    path = os.fspath(path)
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if not n.startswith(".") and os.path.isfile(os.path.join(path, n)))
        files = [os.path.join(path, n) for n in names]
        ok = [f for f in files if f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS)]
        skipped = [f for f in files if f not in ok]
        if not ok:
            extra = f" ({len(skipped)} other file(s) skipped)" if skipped else ""
            raise cli.InputError(f"input folder {path!r} has no image or video file{extra}; supported: "
                             f"{' '.join(IMAGE_EXTS + VIDEO_EXTS)}")
        return ok, skipped
    if not os.path.exists(path):
        raise cli.InputError(f"input {path!r} does not exist")
    if not path.lower().endswith(IMAGE_EXTS + VIDEO_EXTS):
        raise cli.InputError(f"input {path!r}: unsupported extension {os.path.splitext(path)[1]!r}; supported: "
                         f"{' '.join(IMAGE_EXTS + VIDEO_EXTS)}")
    return [path], []


def output_stems(paths) -> dict:
    """path -> output stem: the file stem, or `name_ext` when two inputs share a stem."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    out = {}
    for p, s in zip(paths, stems):
        out[p] = s if stems.count(s) == 1 else os.path.basename(p).replace(".", "_")
    return out


# ------------------------------------------------------------------------------------------ encoding


def check_colormap(name: str) -> None:
    try:
        from matplotlib import colormaps

        colormaps[name]
    except KeyError:
        raise cli.InputError(f"unknown colour map {name!r} (any matplotlib colour map name, e.g. magma, viridis, "
                             "turbo, inferno)") from None


def color_range(depth, mode: str = "auto", vmin: float = 0.0, vmax: float = 10.0) -> tuple[float, float]:
    if mode == "fixed":
        return float(vmin), float(max(vmax, vmin + 1e-6))
    return depth_scale(depth)


def _even(frame):
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h % 2 or w % 2) else frame


# ------------------------------------------------------------------------------------------ running


class Predictor:
    """Runs a `litedepth_tf.api.DepthModel` on files and writes the outputs (see the module docstring)."""

    def __init__(self, model, out_dir, colormap="magma", range_mode="auto", vmin=0.0, vmax=10.0,
                 with_colorbar=False, with_side_by_side=False, fps=None, save_frames=False, log=print):
        self.model, self.out = model, os.fspath(out_dir)
        self.cmap, self.range_mode, self.vmin, self.vmax = colormap, range_mode, vmin, vmax
        self.with_colorbar, self.with_side_by_side = with_colorbar, with_side_by_side
        self.fps, self.save_frames, self.log = fps, save_frames, log
        self.latencies_ms: list[float] = []

    def _depth(self, image):
        prep = prepare_image(image, getattr(self.model, "input_size", (480, 640)))
        depth = restore_size(self.model.predict_network(prep.network_input), prep.size)
        self.latencies_ms.append(self.model.last_latency_ms)
        return prep, depth

    def image(self, path, stem) -> list[str]:
        arr, notes = read_image(path)
        prep, depth = self._depth(arr)
        for note in notes + prep.notes:
            self.log(f"note: {path}: {note}")
        lo, hi = color_range(depth, self.range_mode, self.vmin, self.vmax)
        color = colorize_depth(depth, lo, hi, self.cmap, self.with_colorbar)
        written = [write_png(os.path.join(self.out, "depth", stem + ".png"), depth_to_mm(depth)),
                   write_png(os.path.join(self.out, "color", stem + ".png"), color)]
        if self.with_side_by_side:
            written.append(write_png(os.path.join(self.out, "side_by_side", stem + ".png"),
                                     side_by_side(prep.rgb, color)))
        return written

    def video(self, path, stem) -> list[str]:
        import imageio.v3 as iio

        plugin = "FFMPEG" if path.lower().endswith(FFMPEG_EXTS) else None
        try:
            meta = iio.immeta(path, plugin=plugin) if plugin else iio.immeta(path)
            frames = iio.imiter(path, plugin=plugin) if plugin else iio.imiter(path)
        except Exception as err:  # noqa: BLE001 - name the file
            raise ValueError(f"cannot read video {path!r}: {type(err).__name__}: {err}") from err
        fps = self.fps or meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") and not plugin
                                              else None) or 10.0
        total = meta.get("nframes")
        if not (isinstance(total, (int, float)) and np.isfinite(total)):
            total = int(round(meta["duration"] * fps)) if plugin and meta.get("duration") else None
        names = [os.path.join(self.out, f"{stem}_depth.mp4")]
        if self.with_side_by_side:
            names.append(os.path.join(self.out, f"{stem}_side_by_side.mp4"))
        written, count, rng = [], 0, None
        with _VideoWriters(names, fps, atomic_path) as writers:
            bar = progress_bar(total=total, desc=os.path.basename(path), unit="frame")
            try:
                for frame in frames:
                    prep, depth = self._depth(frame)
                    if count == 0:
                        for note in prep.notes:
                            self.log(f"note: {path}: {note}")
                    if rng is None:
                        rng = color_range(depth, self.range_mode, self.vmin, self.vmax)
                    color = colorize_depth(depth, *rng, self.cmap, self.with_colorbar)
                    writers.append(0, _even(color))
                    if self.with_side_by_side:
                        writers.append(1, _even(side_by_side(prep.rgb, color)))
                    if self.save_frames:
                        name = f"{stem}_{count:06d}.png"
                        written += [write_png(os.path.join(self.out, "depth", name), depth_to_mm(depth)),
                                    write_png(os.path.join(self.out, "color", name), color)]
                    count += 1
                    bar.update(1)
            except Exception as err:  # noqa: BLE001 - name the file
                raise ValueError(f"video {path!r} failed at frame {count}: {type(err).__name__}: {err}") from err
            finally:
                bar.close()
            if count == 0:
                raise ValueError(f"video {path!r} has no frames")
        self.log(f"{path}: {count} frames at {fps:g} fps")
        return names + written

    def run(self, paths) -> tuple[list, list]:
        """-> (written files, [(path, error message)])."""

        written, failed = [], []
        stems = output_stems(paths)
        for path in track(paths, desc="predict", unit="file", disable=True if len(paths) < 2 else None):
            try:
                if path.lower().endswith(VIDEO_EXTS):
                    written += self.video(path, stems[path])
                else:
                    written += self.image(path, stems[path])
            except (ValueError, OSError) as err:  # OSError: a write failed (disk full, ...); named, run goes on
                msg = str(err) if isinstance(err, ValueError) else f"cannot write the outputs of {path!r}: {err}"
                failed.append((path, msg))
                self.log(f"error: {msg} (skipped)", file=sys.stderr)
        return written, failed


class _VideoWriters:
    """One H.264 writer per output name, each writing to a temp file renamed on success (atomic)."""

    def __init__(self, names, fps, atomic_path):
        self.names, self.fps, self.atomic_path = names, fps, atomic_path
        self.writers, self.contexts = [], []

    def __enter__(self):
        for name in self.names:
            ctx = self.atomic_path(name, suffix=".mp4")
            tmp = ctx.__enter__()
            self.contexts.append(ctx)
            self.writers.append([tmp, None])
        return self

    def append(self, k, frame):
        import imageio.v3 as iio

        if self.writers[k][1] is None:
            self.writers[k][1] = iio.imopen(self.writers[k][0], "w", plugin="FFMPEG").legacy_get_writer(
                fps=float(self.fps), codec="libx264", quality=8, macro_block_size=1)
        self.writers[k][1].append_data(frame)

    def __exit__(self, exc_type, exc, tb):
        for w in self.writers:
            if w[1] is not None:
                try:
                    w[1].close()
                except Exception:  # noqa: BLE001 - already failing: keep the first error
                    if exc_type is None:
                        raise
        for ctx in reversed(self.contexts):
            ctx.__exit__(exc_type, exc, tb)
        return False


def _print(msg, file=None):
    print(msg, file=file or sys.stdout, flush=True)


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("weights", None, "Keras weights (.weights.h5) of --model. Exactly one of --weights/--tflite.",
                        **d)
    flags.DEFINE_string("tflite", None, "A .tflite model.", **d)
    flags.DEFINE_string("model", "student", "Model preset (litedepth_tf.models.presets) of --weights.", **d)
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
    flags.DEFINE_integer("threads", None, ".tflite interpreter threads.", **d)
    flags.DEFINE_enum("dataset", None, list(datasets.PRESETS), "The network input is this data set's frame size "
                      "(e.g. kitti: 352x1216, for a model exported with export_tflite.py --dataset kitti).", **d)
    flags.DEFINE_string("input_size", None, "The network input size HxW (default 480x640, or the --dataset's).", **d)
    return fv


def input_size(fv):
    """--input_size, else the --dataset's frame size, else None (480x640)."""
    if fv.input_size:
        return datasets.parse_size(fv.input_size, "--input_size")
    if fv.dataset:
        preset = datasets.get_preset(fv.dataset)
        if preset.frame_size is None:
            raise cli.InputError(f"--dataset={fv.dataset} has no fixed frame size: give --input_size HxW")
        return preset.frame_size
    return None


def main(argv, fv=None) -> int:
    fv = flags.FLAGS if fv is None else fv
    if bool(fv.weights) == bool(fv.tflite):
        raise cli.InputError("exactly one of --weights or --tflite is required"
                             + (" (got both)" if fv.weights else " (got neither)"))
    for name in ("input", "out"):
        if not fv[name].value:
            raise cli.InputError(f"--{name} is required")
    check_colormap(fv.colormap)
    if fv.range == "fixed" and not fv.vmax > fv.vmin:
        raise cli.InputError(f"--vmax ({fv.vmax}) must be larger than --vmin ({fv.vmin})")
    paths, skipped = list_inputs(fv.input)
    check_writable(fv.out, what="output folder")  # before the model is loaded, not at the first write
    try:
        model = load(fv.weights or fv.tflite, model=fv.model, num_threads=fv.threads, input_size=input_size(fv))
    except ValueError as err:
        raise cli.InputError(str(err)) from err
    for s in skipped:
        _print(f"skipping {s}: unsupported extension", file=sys.stderr)
    pred = Predictor(model, fv.out, fv.colormap, fv.range, fv.vmin, fv.vmax, fv.colorbar, fv.side_by_side, fv.fps,
                     fv.save_frames, log=_print)
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


def entry_point():
    cli.run(main, define_flags)


if __name__ == "__main__":
    entry_point()
