"""Depth map + pinhole intrinsics -> a coloured 3-D point cloud, and binary PLY files (pure NumPy).

Camera frame as OpenCV: x right, y down, z forward (the depth, metres). Pixel (row v, column u) has its centre at
the integer coordinates (u, v), the convention of the data pipeline (`data.augment.flip` maps cx to W - 1 - cx):

    X = (u - cx) * Z / fx,   Y = (v - cy) * Z / fy,   Z = depth[v, u]

`intrinsics` are ``(fx, fy, cx, cy)`` in pixels at the depth map's own size; `scale_intrinsics` carries them to
another size (a resize maps pixel centres as u' = (u + 0.5) * W'/W - 0.5). `MAI_INTRINSICS` (480x640) is the
default of `predict --ply` and `DepthModel.point_cloud`.

PLY: ``binary_little_endian 1.0`` with one ``vertex`` element of ``float x, y, z`` and ``uchar red, green, blue``
(15 bytes per point), which MeshLab, CloudCompare, Open3D and Blender read.
"""

from __future__ import annotations

import numpy as np

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAI_INTRINSICS

MAI_INTRINSICS_HW = (INPUT_HEIGHT, INPUT_WIDTH)  # the size MAI_INTRINSICS are given at
PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def parse_intrinsics(text) -> tuple[float, float, float, float]:
    """'fx,fy,cx,cy' (or a sequence of 4 numbers) -> 4 floats; ValueError unless 4 finite numbers with fx, fy > 0."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"intrinsics {text!r}: expected 4 numbers fx,fy,cx,cy") from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f"intrinsics {text!r}: expected 4 finite numbers fx,fy,cx,cy")
    if values[0] <= 0 or values[1] <= 0:
        raise ValueError(f"intrinsics {text!r}: the focal lengths fx and fy must be > 0")
    return values


def scale_intrinsics(intrinsics, from_hw, to_hw) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) at an image of size `from_hw` -> the same camera at `to_hw` (a resize, aspect not kept)."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def default_intrinsics(hw) -> tuple[float, float, float, float]:
    """The MAI 2022 camera (`constants.MAI_INTRINSICS` at 480x640) scaled to an image of size `hw`."""
    return scale_intrinsics(MAI_INTRINSICS, MAI_INTRINSICS_HW, hw)


def backproject(depth, intrinsics, rgb=None) -> tuple[np.ndarray, np.ndarray]:
    """HxW depth (metres) -> (points (N, 3) float32 camera coordinates, colours (N, 3) uint8), one point per pixel
    with a finite depth > 0, in row-major pixel order. `rgb` (HxWx3, 0..255, any dtype) gives the colours, rounded
    and clipped; without it every point is grey 128."""
    d = np.asarray(depth, np.float32)
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise ValueError(f"expected an HxW depth map, got shape {d.shape}")
    fx, fy, cx, cy = parse_intrinsics(intrinsics)
    h, w = d.shape
    valid = np.isfinite(d) & (d > 0)
    v, u = np.nonzero(valid)
    z = d[v, u]
    points = np.empty((z.size, 3), np.float32)
    points[:, 0] = (u.astype(np.float32) - np.float32(cx)) * z / np.float32(fx)
    points[:, 1] = (v.astype(np.float32) - np.float32(cy)) * z / np.float32(fy)
    points[:, 2] = z
    if rgb is None:
        colors = np.full((z.size, 3), 128, np.uint8)
    else:
        c = np.asarray(rgb)
        if c.shape[:2] != (h, w) or c.ndim != 3 or c.shape[-1] < 3:
            raise ValueError(f"rgb of shape {c.shape} does not match the {h}x{w} depth map")
        c = c[v, u, :3]
        colors = c if c.dtype == np.uint8 else np.clip(np.round(c.astype(np.float32)), 0, 255).astype(np.uint8)
    return points, colors


def ply_bytes(points, colors) -> bytes:
    """(N, 3) points and (N, 3) uint8 colours -> a binary little-endian PLY file's bytes."""
    p = np.asarray(points, np.float32).reshape(-1, 3)
    c = np.asarray(colors, np.uint8).reshape(-1, 3)
    if len(p) != len(c):
        raise ValueError(f"{len(p)} points but {len(c)} colours")
    vertices = np.empty(len(p), PLY_VERTEX)
    vertices["x"], vertices["y"], vertices["z"] = p[:, 0], p[:, 1], p[:, 2]
    vertices["red"], vertices["green"], vertices["blue"] = c[:, 0], c[:, 1], c[:, 2]
    header = ("ply\nformat binary_little_endian 1.0\ncomment litedepth_tf point cloud, metres, camera frame "
              f"x right y down z forward\nelement vertex {len(p)}\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    return header.encode("ascii") + vertices.tobytes()
