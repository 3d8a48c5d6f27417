"""Depth maps for images, folders and videos with a trained LiteDepth model (`.weights.h5` or `.tflite`).

    python -m litedepth_tf.predict --tflite artifacts/litedepth_int8.tflite --input photo.jpg --out out/
    python -m litedepth_tf.predict --weights runs/demo/best.weights.h5 --input frames/ --out out/ --colorbar \\
        --side_by_side
    python -m litedepth_tf.predict --tflite m.tflite --input clip.mp4 --out out/ --range fixed --vmin 0 --vmax 10

Outputs (every file written atomically; `<stem>` is the input's file name without extension, or the full name
with its dot replaced by `_` when two inputs in a folder share a stem, e.g. `a.jpg` and `a.png`):

* an image -> `OUT/depth/<stem>.png`: uint16 depth in **millimetres** (MAI convention: round(depth*1000),
  clipped to 65535; readable by `data.pipeline.decode_pair`, and OUT/depth is an MAI `depth/` folder);
  `OUT/color/<stem>.png`: colour-mapped depth (unless `--nocolor`); `OUT/side_by_side/<stem>.png`: RGB | depth
  (`--side_by_side`); `OUT/ply/<stem>.ply`: the coloured point cloud (`--ply`, binary little-endian PLY, metres,
  camera frame x right / y down / z forward, `litedepth_tf.common.pointcloud`; `--intrinsics fx,fy,cx,cy` at the
  input's size, default the MAI camera scaled to it).
* a video (.mp4 .avi .mov .mkv .gif) -> `OUT/<stem>_depth.mp4`: colour-mapped depth video (H.264);
  `OUT/<stem>_side_by_side.mp4` (`--side_by_side`); with `--save_frames` also every frame as
  `OUT/depth/<stem>_NNNNNN.png` + `OUT/color/<stem>_NNNNNN.png` (NNNNNN = frame index from 0; no colour PNGs with
  `--nocolor`); with `--ply` every frame's `OUT/ply/<stem>_NNNNNN.ply`.

Speed: reading, the network and writing overlap (`Predictor`): `--workers` threads decode and prepare the next
images while the network runs, `--workers` threads colour-map, encode and write the outputs (temp files), one
thread renames them in input order. PNGs are written with one row filter and zlib level `--png_level` (1)
(`common.images.fast_png_bytes`: the same pixels as before, ~7x faster to encode than PIL's level 3; "Sub" rows for
depth maps and side by side, unfiltered rows for colour maps, which compress better so). `--nocolor` skips the
colour maps (depth PNGs only: the fastest). `python export/benchmark_predict.py` measures predict against the
network alone.

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

import collections
import contextlib
import errno
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image, ImageOps

from litedepth_tf.api import load, prepare_image, restore_size
from litedepth_tf.common import cli
from litedepth_tf.common.colormap import colorize_depth, depth_scale, side_by_side
from litedepth_tf.common.files import (
    WriteError,
    atomic_path,
    atomic_write_bytes,
    check_writable,
    commit_staged,
    discard_staged,
    fsync_dir,
    stage_bytes,
)
from litedepth_tf.common.images import depth_to_mm, fast_png_bytes
from litedepth_tf.common.pointcloud import backproject, default_intrinsics, parse_intrinsics, ply_bytes
from litedepth_tf.common.progress import progress_bar
from litedepth_tf.data import datasets
from litedepth_tf.data.check import read_png_header
from litedepth_tf.tflite.model_card import card_path, describe

# Write errors that every later output would hit too: the run stops at the first (one line, exit 2).
STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
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
            size = im.size
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of an image without an orientation
            if im.size != size:
                notes.append("EXIF orientation applied")
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


def default_workers() -> int:
    """Reader threads and encoder threads (each) when `--workers` is not given: the CPU count, 1..4."""
    return max(1, min(4, os.cpu_count() or 1))


@contextlib.contextmanager
def _pools(*sizes):
    """Thread pools that, on an error or Ctrl-C, drop their queued work instead of finishing it."""
    pools = [ThreadPoolExecutor(max_workers=n, thread_name_prefix="predict") for n in sizes]
    try:
        yield pools
    except BaseException:
        for p in pools:
            p.shutdown(wait=True, cancel_futures=True)
        raise
    for p in pools:
        p.shutdown(wait=True)


class _FrameFailed(ValueError):
    """A video frame could not be written (already names the video and the frame)."""


class _Prefetch:
    """Runs `fn` over `iterable` in one background thread, `depth` items ahead (video frames: decoding overlaps
    the network). Iterating re-raises the thread's exception; `close` stops it and closes `iterable`."""

    _DONE = object()

    def __init__(self, iterable, fn, depth=4):
        self._queue, self._stop = queue.Queue(depth), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterable, fn), daemon=True, name="predict-read")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable, fn):
        try:
            for item in iterable:
                if not self._put((True, fn(item))):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((False, err))
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            self._put((True, self._DONE))

    def __iter__(self):
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._DONE:
                return
            yield item

    def close(self):
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()


class Predictor:
    """Runs a `litedepth_tf.api.DepthModel` on files and writes the outputs (see the module docstring).

    A run of images is a pipeline: `workers` threads decode and prepare the next images, the network runs in the
    calling thread (the interpreter releases the GIL), `workers` threads colour-map, encode and write the outputs
    to fsync'ed hidden temp files, and one thread renames them onto their names in input order (so a kill leaves
    the outputs of a prefix of the inputs whole, and never a part of a file).
    `workers=0` does everything in the calling thread, one file after another (the same bytes)."""

    def __init__(self, model, out_dir, colormap="magma", range_mode="auto", vmin=0.0, vmax=10.0,
                 with_colorbar=False, with_side_by_side=False, fps=None, save_frames=False, log=print,
                 with_color=True, with_ply=False, intrinsics=None, workers=None, png_level=1):
        self.model, self.out = model, os.fspath(out_dir)
        self.cmap, self.range_mode, self.vmin, self.vmax = colormap, range_mode, vmin, vmax
        self.with_colorbar, self.with_side_by_side = with_colorbar, with_side_by_side
        self.fps, self.save_frames, self.log = fps, save_frames, log
        self.with_color, self.with_ply = with_color, with_ply
        self.intrinsics = None if intrinsics is None else parse_intrinsics(intrinsics)
        self.workers = default_workers() if workers is None else max(0, int(workers))
        self.png_level = int(png_level)
        self.latencies_ms: list[float] = []

    # -------------------------------------------------------------------- the stages

    def _depth(self, prep):
        """The network (calling thread only): depth at the image's own size."""
        depth = restore_size(self.model.predict_network(prep.network_input), prep.size)
        self.latencies_ms.append(self.model.last_latency_ms)
        return depth

    def _cloud(self, depth, rgb) -> bytes:
        k = self.intrinsics or default_intrinsics(depth.shape)
        return ply_bytes(*backproject(depth, k, rgb))

    def _encode_image(self, stem, depth, rgb) -> list:
        """[(output path, bytes)] of one image: depth PNG, then colour map, side by side, point cloud."""
        files = [(os.path.join(self.out, "depth", stem + ".png"),
                  fast_png_bytes(depth_to_mm(depth), self.png_level))]
        if self.with_color or self.with_side_by_side:
            lo, hi = color_range(depth, self.range_mode, self.vmin, self.vmax)
            color = colorize_depth(depth, lo, hi, self.cmap, self.with_colorbar)
            if self.with_color:
                files.append((os.path.join(self.out, "color", stem + ".png"),
                              fast_png_bytes(color, self.png_level, "none")))
            if self.with_side_by_side:
                files.append((os.path.join(self.out, "side_by_side", stem + ".png"),
                              fast_png_bytes(side_by_side(rgb, color), self.png_level)))
        if self.with_ply:
            files.append((os.path.join(self.out, "ply", stem + ".ply"), self._cloud(depth, rgb)))
        return files

    @staticmethod
    def _commit(files) -> list:
        return [atomic_write_bytes(path, data) for path, data in files]

    def _encode_and_stage(self, stem, depth, rgb) -> list:
        """Encoder thread: the outputs of one image encoded and written to fsync'ed hidden temp files (many at
        once: fsync waits in parallel) -> [(output path, temp path)], renamed later in input order."""
        staged = []
        try:
            for path, data in self._encode_image(stem, depth, rgb):
                staged.append((path, stage_bytes(path, data)))
        except BaseException:
            for _, tmp in staged:
                discard_staged(tmp)
            raise
        return staged

    @staticmethod
    def _rename(job) -> list:
        """Writer thread (one, so renames follow the input order): the staged files of one image onto their
        names, then each folder synced once. A failed rename (e.g. a folder in the way) drops the rest."""
        staged, done = job.result(), []
        try:
            for path, tmp in staged:
                done.append(commit_staged(tmp, path, sync_dir=False))
        finally:
            for _, tmp in staged[len(done):]:
                discard_staged(tmp)
            for folder in dict.fromkeys(os.path.dirname(os.path.abspath(p)) for p in done):
                fsync_dir(folder)
        return done

    def _prepare(self, image):
        """The network input at the model's frame size (480x640, or e.g. KITTI's 352x1216 with --dataset)."""
        return prepare_image(image, getattr(self.model, "input_size", (480, 640)))

    def _read(self, path):
        arr, notes = read_image(path)
        prep = self._prepare(arr)
        return prep, notes + prep.notes

    # -------------------------------------------------------------------- images

    def image(self, path, stem) -> list[str]:
        """One image, start to end in the calling thread -> the files written."""
        prep, notes = self._read(path)
        depth = self._depth(prep)
        for note in notes:
            self.log(f"note: {path}: {note}")
        return self._commit(self._encode_image(stem, depth, prep.rgb))

    def _images(self, paths, stems, written, failed, bar):
        if self.workers == 0:
            for path in paths:
                try:
                    written += self.image(path, stems[path])
                except (ValueError, OSError) as err:
                    self._failed(path, err, failed)
                bar.update(1)
            return
        need_rgb = self.with_side_by_side or self.with_ply
        ahead = 2 * self.workers
        with _pools(self.workers, self.workers, 1) as (readers, encoders, writer):
            todo, reads, pending = iter(paths), collections.deque(), collections.deque()

            def refill():
                while len(reads) < ahead:
                    path = next(todo, None)
                    if path is None:
                        return
                    reads.append((path, readers.submit(self._read, path)))

            def collect():
                path, fut = pending.popleft()
                try:
                    written.extend(fut.result())
                except (ValueError, OSError) as err:
                    self._failed(path, err, failed)
                bar.update(1)

            refill()
            while reads:
                path, fut = reads.popleft()
                refill()
                try:
                    prep, notes = fut.result()
                except (ValueError, OSError) as err:
                    self._failed(path, err, failed)
                    bar.update(1)
                    continue
                depth = self._depth(prep)
                for note in notes:
                    self.log(f"note: {path}: {note}")
                job = encoders.submit(self._encode_and_stage, stems[path], depth, prep.rgb if need_rgb else None)
                del prep  # the reader's arrays are not kept while the outputs wait
                pending.append((path, writer.submit(self._rename, job)))
                while pending and (len(pending) > ahead or pending[0][1].done()):
                    collect()
            while pending:
                collect()

    def _failed(self, path, err, failed):
        if isinstance(err, WriteError) and err.errno in STOP_ERRNOS:  # disk full, read-only, I/O error: the next
            raise WriteError(f"{err}; the files written before it in {self.out} are complete", err.errno,
                             err.filename) from None
        # an error of this input's outputs only (a folder where a file must go, a video writer that failed, ...):
        # named, the run goes on
        msg = f"cannot write the outputs of {path!r}: {err}" if isinstance(err, OSError) else str(err)
        failed.append((path, msg))
        self.log(f"error: {msg} (skipped)", file=sys.stderr)

    # -------------------------------------------------------------------- videos

    def _video_frame(self, writers, path, stem, k, prep, depth, rng) -> list:
        """Colour map, video frames and per-frame files of frame `k` (one thread: the writers keep frame order)."""
        try:
            color = colorize_depth(depth, *rng, self.cmap, self.with_colorbar)
            writers.append(0, _even(color))
            if self.with_side_by_side:
                writers.append(1, _even(side_by_side(prep.rgb, color)))
            files = []
            name = f"{stem}_{k:06d}"
            if self.save_frames:
                files.append((os.path.join(self.out, "depth", name + ".png"),
                              fast_png_bytes(depth_to_mm(depth), self.png_level)))
                if self.with_color:
                    files.append((os.path.join(self.out, "color", name + ".png"),
                                  fast_png_bytes(color, self.png_level, "none")))
            if self.with_ply:
                files.append((os.path.join(self.out, "ply", name + ".ply"), self._cloud(depth, prep.rgb)))
            return self._commit(files)
        except Exception as err:  # noqa: BLE001 - name the file and the frame
            raise _FrameFailed(f"video {path!r} failed at frame {k}: {type(err).__name__}: {err}") from err

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
        source = _Prefetch(frames, self._prepare) if self.workers else map(self._prepare, frames)
        with _VideoWriters(names, fps, atomic_path) as writers, _pools(1) as (sink,):
            bar = progress_bar(total=total, desc=os.path.basename(path), unit="frame")
            pending = collections.deque()
            try:
                for prep in source:
                    depth = self._depth(prep)
                    if count == 0:
                        for note in prep.notes:
                            self.log(f"note: {path}: {note}")
                    if rng is None:
                        rng = color_range(depth, self.range_mode, self.vmin, self.vmax)
                    job = (writers, path, stem, count, prep, depth, rng)
                    if self.workers:
                        pending.append(sink.submit(self._video_frame, *job))
                        while pending and (len(pending) > 4 or pending[0].done()):
                            written += pending.popleft().result()
                    else:
                        written += self._video_frame(*job)
                    count += 1
                    bar.update(1)
                while pending:
                    written += pending.popleft().result()
            except _FrameFailed:
                raise
            except Exception as err:  # noqa: BLE001 - name the file
                raise ValueError(f"video {path!r} failed at frame {count}: {type(err).__name__}: {err}") from err
            finally:
                bar.close()
                if isinstance(source, _Prefetch):
                    source.close()
            if count == 0:
                raise ValueError(f"video {path!r} has no frames")
        self.log(f"{path}: {count} frames at {fps:g} fps")
        return names + written

    # -------------------------------------------------------------------- a list of inputs

    def run(self, paths) -> tuple[list, list]:
        """-> (written files, [(path, error message)]). Runs of consecutive images go through the pipeline;
        each video is read, run and written frame by frame (its frames overlap in the same way)."""

        written, failed = [], []
        stems = output_stems(paths)
        bar = progress_bar(total=len(paths), desc="predict", unit="file", disable=True if len(paths) < 2 else None)
        try:
            i = 0
            while i < len(paths):
                if paths[i].lower().endswith(VIDEO_EXTS):
                    try:
                        written += self.video(paths[i], stems[paths[i]])
                    except (ValueError, OSError) as err:
                        self._failed(paths[i], err, failed)
                    bar.update(1)
                    i += 1
                    continue
                j = i
                while j < len(paths) and not paths[j].lower().endswith(VIDEO_EXTS):
                    j += 1
                self._images(paths[i:j], stems, written, failed, bar)
                i = j
        finally:
            bar.close()
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
    intrinsics = None
    if fv.intrinsics:
        try:
            intrinsics = parse_intrinsics(fv.intrinsics)
        except ValueError as err:
            raise cli.InputError(f"--intrinsics: {err}") from None
    if fv.workers is not None and fv.workers < 0:
        raise cli.InputError(f"--workers must be >= 0, got {fv.workers}")
    if not 0 <= fv.png_level <= 9:
        raise cli.InputError(f"--png_level must be 0..9, got {fv.png_level}")
    paths, skipped = list_inputs(fv.input)
    check_writable(fv.out, what="output folder")  # before the model is loaded, not at the first write
    try:
        model = load(fv.weights or fv.tflite, model=fv.model, num_threads=fv.threads, input_size=input_size(fv))
    except ValueError as err:
        raise cli.InputError(str(err)) from err
    for s in skipped:
        _print(f"skipping {s}: unsupported extension", file=sys.stderr)
    if model.card is not None:
        _print(f"model card {card_path(model.path)}: {describe(model.card)}")
    pred = Predictor(model, fv.out, fv.colormap, fv.range, fv.vmin, fv.vmax, fv.colorbar, fv.side_by_side, fv.fps,
                     fv.save_frames, log=_print, with_color=fv.color, with_ply=fv.ply, intrinsics=intrinsics,
                     workers=fv.workers, png_level=fv.png_level)
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
