"""What `predict` writes, and how: the outputs of one depth map encoded to bytes (`Outputs`), written atomically
one at a time (`commit_files`) or staged to hidden temp files and renamed later in input order (`stage_files`,
`rename_staged`), and H.264 videos written to temp files renamed on success (`VideoWriters`).

The outputs of an image `<stem>` under the output folder: ``depth/<stem>.png`` (uint16 millimetres, MAI),
``color/<stem>.png`` (the colour-mapped depth, optionally with a colour bar), ``side_by_side/<stem>.png`` (RGB |
colour map), ``ply/<stem>.ply`` (the coloured point cloud). PNGs get one row filter and zlib level `png_level`
(`common.images.fast_png_bytes`): "Sub" rows for depth maps and side by side, unfiltered rows for colour maps (they
compress better so).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.colormap import colorize_depth, depth_scale, side_by_side
from litedepth_tf.common.files import atomic_path, atomic_write_bytes, commit_staged, discard_staged, fsync_dir, \
    stage_bytes
from litedepth_tf.common.images import depth_to_mm, fast_png_bytes
from litedepth_tf.common.pointcloud import backproject, default_intrinsics, parse_intrinsics, ply_bytes


def check_colormap(name: str) -> None:
    """InputError unless `name` is a matplotlib colour map."""
    try:
        from matplotlib import colormaps

        colormaps[name]
    except KeyError:
        raise InputError(f"unknown colour map {name!r} (any matplotlib colour map name, e.g. magma, viridis, "
                         "turbo, inferno)") from None


def color_range(depth, mode: str = "auto", vmin: float = 0.0, vmax: float = 10.0) -> tuple[float, float]:
    """The colour map's [low, high] in metres: `mode` "fixed" = vmin..vmax, "auto" = the 2..98th percentile."""
    if mode == "fixed":
        return float(vmin), float(max(vmax, vmin + 1e-6))
    return depth_scale(depth)


def even(frame):
    """A frame padded by one edge pixel to even height and width (H.264 needs them)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h % 2 or w % 2) else frame


@dataclasses.dataclass
class Outputs:
    """Which outputs go where, and how they look (see the module docstring)."""

    out_dir: str
    colormap: str = "magma"
    range_mode: str = "auto"
    vmin: float = 0.0
    vmax: float = 10.0
    with_colorbar: bool = False
    with_side_by_side: bool = False
    with_color: bool = True
    with_ply: bool = False
    intrinsics: tuple | None = None  # fx, fy, cx, cy at the input's size; None: the MAI camera scaled to it
    png_level: int = 1

    def __post_init__(self):
        self.out_dir = os.fspath(self.out_dir)
        if self.intrinsics is not None:
            self.intrinsics = parse_intrinsics(self.intrinsics)

    @property
    def need_rgb(self) -> bool:
        """Whether the outputs use the input image itself (side by side, point cloud colours)."""
        return self.with_side_by_side or self.with_ply

    def path(self, kind: str, name: str) -> str:
        return os.path.join(self.out_dir, kind, name + (".ply" if kind == "ply" else ".png"))

    def colorize(self, depth, rng=None):
        """The colour map of `depth` over `rng` (default: `color_range` of this depth map)."""
        lo, hi = rng or color_range(depth, self.range_mode, self.vmin, self.vmax)
        return colorize_depth(depth, lo, hi, self.colormap, self.with_colorbar)

    def depth_png(self, depth) -> bytes:
        return fast_png_bytes(depth_to_mm(depth), self.png_level)

    def color_png(self, color) -> bytes:
        return fast_png_bytes(color, self.png_level, "none")

    def cloud(self, depth, rgb) -> bytes:
        k = self.intrinsics or default_intrinsics(depth.shape)
        return ply_bytes(*backproject(depth, k, rgb))

    def image_files(self, stem, depth, rgb) -> list:
        """[(output path, bytes)] of one image: depth PNG, then colour map, side by side, point cloud."""
        files = [(self.path("depth", stem), self.depth_png(depth))]
        if self.with_color or self.with_side_by_side:
            color = self.colorize(depth)
            if self.with_color:
                files.append((self.path("color", stem), self.color_png(color)))
            if self.with_side_by_side:
                files.append((self.path("side_by_side", stem),
                              fast_png_bytes(side_by_side(rgb, color), self.png_level)))
        if self.with_ply:
            files.append((self.path("ply", stem), self.cloud(depth, rgb)))
        return files

    def frame_files(self, name, depth, color, rgb, save_frames: bool) -> list:
        """[(output path, bytes)] of one video frame: its PNGs (`save_frames`) and point cloud (`with_ply`)."""
        files = []
        if save_frames:
            files.append((self.path("depth", name), self.depth_png(depth)))
            if self.with_color:
                files.append((self.path("color", name), self.color_png(color)))
        if self.with_ply:
            files.append((self.path("ply", name), self.cloud(depth, rgb)))
        return files


def commit_files(files) -> list:
    """Each (path, bytes) written atomically, one after another -> the paths."""
    return [atomic_write_bytes(path, data) for path, data in files]


def stage_files(files) -> list:
    """Each (path, bytes) written to an fsync'ed hidden temp file next to its path (many at once: their fsyncs
    wait in parallel) -> [(path, temp path)], for `rename_staged`. On an error none is left behind."""
    staged = []
    try:
        for path, data in files:
            staged.append((path, stage_bytes(path, data)))
    except BaseException:
        for _, tmp in staged:
            discard_staged(tmp)
        raise
    return staged


def rename_staged(staged) -> list:
    """The staged files of one input onto their names, then each folder synced once -> the paths. A failed rename
    (e.g. a folder in the way) drops the rest of that input's files."""
    done = []
    try:
        for path, tmp in staged:
            done.append(commit_staged(tmp, path, sync_dir=False))
    finally:
        for _, tmp in staged[len(done):]:
            discard_staged(tmp)
        for folder in dict.fromkeys(os.path.dirname(os.path.abspath(p)) for p in done):
            fsync_dir(folder)
    return done


class VideoWriters:
    """One H.264 writer per output name, each writing to a temp file renamed on success (atomic)."""

    def __init__(self, names, fps):
        self.names, self.fps = names, fps
        self.writers, self.contexts = [], []

    def __enter__(self):
        for name in self.names:
            ctx = atomic_path(name, suffix=".mp4")
            tmp = ctx.__enter__()
            self.contexts.append(ctx)
            self.writers.append([tmp, None])
        return self

    def append(self, k, frame):
        import imageio.v3 as iio

        if self.writers[k][1] is None:
            self.writers[k][1] = iio.imopen(self.writers[k][0], "w", plugin="FFMPEG").legacy_get_writer(
                fps=float(self.fps), codec="libx264", quality=8, macro_block_size=1)
        self.writers[k][1].append_data(even(frame))

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
