"""What `predict` reads: image files as stored (16-bit PNGs whole, EXIF orientation applied), video frames, and
the inputs of a folder with the output name of each.

Images: PIL, except 16-bit PNGs (`common.images.decode_png`: PIL would keep only the high byte of 16-bit RGB);
videos: imageio (the optional ``video`` extra), FFmpeg for .mp4 .avi .mov .mkv, PIL for .gif. No TensorFlow.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.images import decode_png
from litedepth_tf.data.check import read_png_header

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".gif")
FFMPEG_EXTS = (".mp4", ".avi", ".mov", ".mkv")


def is_video(path) -> bool:
    return os.fspath(path).lower().endswith(VIDEO_EXTS)


def read_image(path) -> tuple[np.ndarray, list[str]]:
    """Image file -> (array as stored: HxW, HxWx2/3/4, uint8 / uint16 / ..., notes). 16-bit PNGs keep 16 bits."""

    path = os.fspath(path)
    notes = []
    try:
        bits = read_png_header(path)[2] if path.lower().endswith(".png") else 8
        if bits == 16:
            with open(path, "rb") as f:
                return decode_png(f.read()), notes
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read image {path!r}: {err}") from err
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
    """(supported files, skipped files) for a file or a folder; InputError naming the path if none."""
    path = os.fspath(path)
    supported = IMAGE_EXTS + VIDEO_EXTS
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if not n.startswith(".") and os.path.isfile(os.path.join(path, n)))
        files = [os.path.join(path, n) for n in names]
        ok = [f for f in files if f.lower().endswith(supported)]
        skipped = [f for f in files if f not in ok]
        if not ok:
            extra = f" ({len(skipped)} other file(s) skipped)" if skipped else ""
            raise InputError(f"input folder {path!r} has no image or video file{extra}; supported: "
                             f"{' '.join(supported)}")
        return ok, skipped
    if not os.path.exists(path):
        raise InputError(f"input {path!r} does not exist")
    if not path.lower().endswith(supported):
        raise InputError(f"input {path!r}: unsupported extension {os.path.splitext(path)[1]!r}; supported: "
                         f"{' '.join(supported)}")
    return [path], []


def output_stems(paths) -> dict:
    """path -> output stem: the file stem, or `name_ext` when two inputs share a stem."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    out = {}
    for p, s in zip(paths, stems):
        out[p] = s if stems.count(s) == 1 else os.path.basename(p).replace(".", "_")
    return out


def open_video(path, fps=None):
    """A video file -> (frame iterator, frame rate, frame count or None): the rate is `fps` if given, else the
    file's (a GIF's from its frame duration), else 10. ValueError naming the file if it cannot be opened."""
    import imageio.v3 as iio

    plugin = "FFMPEG" if path.lower().endswith(FFMPEG_EXTS) else None
    try:
        meta = iio.immeta(path, plugin=plugin) if plugin else iio.immeta(path)
        frames = iio.imiter(path, plugin=plugin) if plugin else iio.imiter(path)
    except Exception as err:  # noqa: BLE001 - name the file
        raise ValueError(f"cannot read video {path!r}: {type(err).__name__}: {err}") from err
    fps = fps or meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") and not plugin
                                     else None) or 10.0
    total = meta.get("nframes")
    if not (isinstance(total, (int, float)) and np.isfinite(total)):
        total = int(round(meta["duration"] * fps)) if plugin and meta.get("duration") else None
    return frames, fps, total
