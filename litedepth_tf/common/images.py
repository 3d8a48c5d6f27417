"""Depth maps and images on disk: metres <-> uint16 millimetre PNGs (the MAI convention), atomic PNG writes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import DEPTH_SCALE
from litedepth_tf.common.files import atomic_write_bytes


def depth_to_mm(depth) -> np.ndarray:
    """Metres -> uint16 millimetres (MAI): round(depth*1000) clipped to [0, 65535]; non-finite -> 0."""
    d = np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(d * DEPTH_SCALE), 0, 65535).astype(np.uint16)


def png_bytes(array) -> bytes:
    """uint8 HxWx3 / HxW or uint16 HxW array -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def write_png(path, array) -> str:
    return atomic_write_bytes(path, png_bytes(array))
