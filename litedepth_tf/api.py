"""Depth from any RGB image with a trained LiteDepth model (`.weights.h5` or `.tflite`), in three lines:

    import litedepth_tf
    model = litedepth_tf.load("artifacts/litedepth_int8.tflite")   # or "runs/demo/best.weights.h5"
    depth_m = model.predict(image)        # image: HxWx3 uint8 (or float 0..255) -> HxW float32 metres

Pre/post-processing (shared with `python -m litedepth_tf.predict`, one implementation: `prepare_image` and
`restore_size`):

* any size: the image is resized to 480x640 (bilinear, anti-aliased when shrinking, aspect ratio NOT kept: the
  network was trained on 4:3 frames at 480x640) and the depth is resized back to the image's own size (bilinear);
* grayscale (HxW or HxWx1) is replicated to RGB, an alpha channel (HxWx4, HxWx2) is dropped, 16-bit images
  (uint16) are scaled to 8-bit (/257), float images are taken as 0..255 unless their maximum is <= 1 (then x255);
  each of these adds a human-readable note to `PreparedImage.notes` (`predict(..., return_notes=True)`).

Keras weights need the model preset they were trained with (`model="student"` by default; any name in
`litedepth_tf.models.presets.MODELS`); the deploy graph is the same as the exported one (normalisation merged into the
first conv for the student). `.tflite` files are run with the LiteRT interpreter and must have the LiteDepth
signature `[1,480,640,3] -> [1,480,640,1]` (float32 or uint8 I/O); a wrong one raises a ValueError naming the file.
A `.tflite` with a model card next to it (`name.card.json`, `litedepth_tf.tflite.model_card`) is checked against
it: a card that contradicts the file (another input size, dtype, quantisation, or another file's SHA-256) raises
`ModelCardError` (a ValueError) naming both; the card is `DepthModel.card` (None without one).
Loading a `.tflite` model does not import TensorFlow.

Other frame sizes (models trained or exported for another data set, e.g. KITTI 352x1216): ``load(path,
input_size=(352, 1216))``; the network input is then that size (the `.tflite` signature must match) and the
Keras deploy view runs the network at `common.sizes.network_size` of it (352x1216 -> 96x320).

Point clouds: `model.point_cloud(image, intrinsics=None)` -> (points (N, 3) float32 metres in the camera frame,
colours (N, 3) uint8), intrinsics `(fx, fy, cx, cy)` at the image's size (default: the MAI camera scaled to it;
`litedepth_tf.common.pointcloud`).
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH
from litedepth_tf.common.pointcloud import backproject, default_intrinsics
from litedepth_tf.tflite.model_card import check_card
from litedepth_tf.tflite.runtime import TFLiteModel

NET_HW = (INPUT_HEIGHT, INPUT_WIDTH)
KERAS_SUFFIXES = (".weights.h5", ".h5")
TFLITE_SUFFIXES = (".tflite",)


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


def model_kind(path) -> str:
    """'tflite' or 'keras' from the file name; ValueError naming the file otherwise."""
    name = os.fspath(path).lower()
    if name.endswith(TFLITE_SUFFIXES):
        return "tflite"
    if name.endswith(KERAS_SUFFIXES):
        return "keras"
    raise ValueError(f"{os.fspath(path)!r}: unsupported model file (expected .tflite or .weights.h5)")


class DepthModel:
    """A loaded depth model; see `load`."""

    def __init__(self, path, model: str = "student", num_threads: int | None = None, input_size=None):
        self.path = os.fspath(path)
        self.kind = model_kind(self.path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"model file not found: {self.path!r}")
        self.preset = model
        self.input_size = NET_HW if input_size is None else tuple(int(v) for v in input_size)
        self._last_latency_ms = float("nan")
        self.card = None
        if self.kind == "tflite":
            self._tflite = TFLiteModel(self.path, num_threads=num_threads,
                                       expected_size=None if input_size is None else self.input_size)
            self.card = check_card(self.path, self._tflite.input, self._tflite.output)
            self._run = self._tflite.predict
        else:
            self._run = _keras_runner(self.path, model, self.input_size)

    def predict_network(self, x: np.ndarray) -> np.ndarray:
        """[1, H, W, 3] float32 raw 0..255 -> [H, W] float32 metres (the bare network; (H, W) = input_size)."""
        t0 = time.perf_counter()
        y = np.asarray(self._run(np.asarray(x, np.float32)), np.float32)
        self._last_latency_ms = (time.perf_counter() - t0) * 1e3
        return y.reshape(self.input_size)

    @property
    def last_latency_ms(self) -> float:
        """Wall time of the last network call (ms), pre/post-processing excluded."""
        return self._last_latency_ms

    def predict(self, image, return_notes: bool = False):
        """HxWx3 (or gray / RGBA / 16-bit / float) image -> HxW float32 depth in metres at the image's size."""
        prep = prepare_image(image, self.input_size)
        depth = restore_size(self.predict_network(prep.network_input), prep.size)
        return (depth, prep.notes) if return_notes else depth

    def point_cloud(self, image, intrinsics=None) -> tuple[np.ndarray, np.ndarray]:
        """Image -> (points (N, 3) float32, colours (N, 3) uint8): the predicted depth back-projected with
        `intrinsics` (fx, fy, cx, cy) at the image's own size (None: the MAI camera scaled to it), one point per
        pixel, coloured by the image (camera frame x right, y down, z forward, metres)."""
        prep = prepare_image(image, self.input_size)
        depth = restore_size(self.predict_network(prep.network_input), prep.size)
        return backproject(depth, default_intrinsics(prep.size) if intrinsics is None else intrinsics, prep.rgb)

    def __repr__(self):
        return f"DepthModel({self.path!r}, kind={self.kind!r})"


def _keras_runner(path, preset, input_size=NET_HW):
    # TensorFlow only for Keras weights: a .tflite model runs on ai_edge_litert alone (edge hosts without TF).
    import tensorflow as tf

    from litedepth_tf.models.presets import build_model
    from litedepth_tf.models.student import build_deploy_model, can_merge_normalization

    train_view = build_model(preset, weights=path)
    deploy = build_deploy_model(train_view, merge_normalization=can_merge_normalization(train_view),
                                frame_size=input_size)
    fn = tf.function(lambda x: deploy(x, training=False), reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()


def load(path, model: str = "student", num_threads: int | None = None, input_size=None) -> DepthModel:
    """Loads `.tflite` (LiteRT, `num_threads`) or `.weights.h5` (Keras, preset `model`) -> `DepthModel`;
    ``input_size`` (H, W): the network input of a model made for another frame size (default 480x640)."""
    return DepthModel(path, model=model, num_threads=num_threads, input_size=input_size)
