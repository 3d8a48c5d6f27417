"""The network's input and output at any image size: `prepare_image` (any image array -> the network input) and
`restore_size` (the network's depth -> the image's own size). One implementation for `litedepth_tf.load`, the
`predict` command and every other caller.

* any size: the image is resized to the network input (480x640 by default; bilinear, anti-aliased when shrinking,
  aspect ratio NOT kept: the network was trained on 4:3 frames at 480x640) and the depth is resized back to the
  image's own size (bilinear);
* grayscale (HxW or HxWx1) is replicated to RGB, an alpha channel (HxWx4, HxWx2) is dropped, 16-bit images
  (uint16) are scaled to 8-bit (/257), float images are taken as 0..255 unless their maximum is <= 1 (then x255);
  each of these adds a human-readable note to `PreparedImage.notes`.

NumPy and PIL only (no TensorFlow): a `.tflite` model runs without it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH

NET_HW = (INPUT_HEIGHT, INPUT_WIDTH)


@dataclasses.dataclass
class PreparedImage:
    """The network input for one image: `network_input` float32 [1, 480, 640, 3] raw 0..255, the image's own
    `size` (H, W), `rgb` the image as float32 HxWx3 0..255 (for side-by-side views) and `notes` on conversions."""

    network_input: np.ndarray
    size: tuple
    rgb: np.ndarray
    notes: list


def to_rgb(image) -> tuple[np.ndarray, list[str]]:
    """Any image array -> (float32 HxWx3 in 0..255, notes). See the module docstring for the rules."""
    a = np.asarray(image)
    notes = []
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        notes.append("grayscale image: replicated to RGB")
        a = np.stack([a, a, a], axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 2:
        notes.append("grayscale + alpha image: alpha dropped, gray replicated to RGB")
        a = np.stack([a[..., 0]] * 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 4:
        notes.append("RGBA image: alpha channel dropped")
        a = a[..., :3]
    elif not (a.ndim == 3 and a.shape[-1] == 3):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"empty image of shape {a.shape}")
    if a.dtype == np.uint8:  # already in 0..255: no clipping copy
        return a.astype(np.float32), notes
    if a.dtype == np.bool_:
        out = a.astype(np.float32) * 255.0
    elif np.issubdtype(a.dtype, np.integer):
        if a.dtype == np.uint16 or a.max() > 255:
            notes.append(f"{a.dtype.name} image: scaled from 16-bit to 8-bit range (/257)")
            out = a.astype(np.float32) / 257.0
        else:
            out = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        out = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if out.size and out.max() <= 1.0:
            notes.append("float image with values in 0..1: scaled to 0..255")
            out = out * 255.0
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")
    return np.clip(out, 0.0, 255.0).astype(np.float32), notes


def _resize_float(a: np.ndarray, hw) -> np.ndarray:
    """Bilinear resize of float32 HxW or HxWxC to `hw` (PIL: anti-aliased when shrinking; no TF needed)."""

    h, w = int(hw[0]), int(hw[1])
    if a.shape[:2] == (h, w):
        return a.astype(np.float32, copy=False)
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), Image.BILINEAR), np.float32)
    return np.stack([_resize_float(a[..., c], hw) for c in range(a.shape[-1])], axis=-1)


def prepare_image(image, size=NET_HW) -> PreparedImage:
    """Image array (any size / channels / dtype) -> the network's [1, H, W, 3] float32 input, (H, W) = ``size``
    (480x640 by default). At that size already, the input is a view of `rgb` (no copy: the interpreter copies it
    in)."""
    rgb, notes = to_rgb(image)
    size = tuple(int(v) for v in size)
    if rgb.shape[:2] == size:
        x = rgb  # to_rgb output is float32 in 0..255 already
    else:
        x = np.clip(_resize_float(rgb, size), 0.0, 255.0).astype(np.float32, copy=False)
    return PreparedImage(x[None], tuple(rgb.shape[:2]), rgb, notes)


def restore_size(depth, size) -> np.ndarray:
    """Network depth ([1,480,640,1], [480,640,1] or [480,640]) -> HxW float32 metres at `size` (bilinear)."""
    d = np.asarray(depth, np.float32)
    d = d.reshape(d.shape[-3:-1]) if d.ndim >= 3 else d
    return _resize_float(d, size)
