"""Depth from any RGB image with a trained LiteDepth model (`.weights.h5` or `.tflite`), in three lines:

    import litedepth_tf
    model = litedepth_tf.load("artifacts/litedepth_int8.tflite")   # or "runs/demo/best.weights.h5"
    depth_m = model.predict(image)        # image: HxWx3 uint8 (or float 0..255) -> HxW float32 metres

Pre/post-processing: `litedepth_tf.inference.prepare` (`prepare_image`, `restore_size`, `to_rgb`, re-exported
here), the one implementation that `predict` uses too: any size (resized to the network input and the depth back
to the image's size), grayscale, alpha, 16-bit and float images (each conversion a note in `PreparedImage.notes`,
`predict(..., return_notes=True)`).

Keras weights are built as the model preset they were trained with: a run's weights (its flags.txt next to them,
`litedepth_tf.models.presets.preset_for_weights`) as the run's preset, other weights as ``model`` (default
"student"; any name in `litedepth_tf.models.presets.PRESETS`); a ``model`` that contradicts the run raises an
InputError (a ValueError) naming both. The deploy graph is the same as the exported one (normalisation merged into the
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

import os
import time

import numpy as np

from litedepth_tf.common.pointcloud import backproject, default_intrinsics
from litedepth_tf.inference.prepare import NET_HW, PreparedImage, prepare_image, restore_size, to_rgb
from litedepth_tf.models.presets import build_model, preset_for_weights
from litedepth_tf.tflite.model_card import check_card
from litedepth_tf.tflite.runtime import TFLiteModel

__all__ = ["DepthModel", "PreparedImage", "load", "model_kind", "prepare_image", "restore_size", "to_rgb"]
KERAS_SUFFIXES = (".weights.h5", ".h5")
TFLITE_SUFFIXES = (".tflite",)


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

    def __init__(self, path, model: str | None = None, num_threads: int | None = None, input_size=None):
        self.path = os.fspath(path)
        self.kind = model_kind(self.path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"model file not found: {self.path!r}")
        self.preset = preset_for_weights(self.path, model, what="model") if self.kind == "keras" else model
        self.input_size = NET_HW if input_size is None else tuple(int(v) for v in input_size)
        self._last_latency_ms = float("nan")
        self.card = None
        if self.kind == "tflite":
            self._tflite = TFLiteModel(self.path, num_threads=num_threads,
                                       expected_size=None if input_size is None else self.input_size)
            self.card = check_card(self.path, self._tflite.input, self._tflite.output)
            self._run = self._tflite.predict
        else:
            self._run = _keras_runner(self.path, self.preset, self.input_size)

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

    from litedepth_tf.models.student import build_deploy_model, can_merge_normalization

    train_view = build_model(preset, weights=path)
    deploy = build_deploy_model(train_view, merge_normalization=can_merge_normalization(train_view),
                                frame_size=input_size)
    fn = tf.function(lambda x: deploy(x, training=False), reduce_retracing=True)
    return lambda x: fn(tf.constant(x)).numpy()


def load(path, model: str | None = None, num_threads: int | None = None, input_size=None) -> DepthModel:
    """Loads `.tflite` (LiteRT, `num_threads`) or `.weights.h5` (Keras, preset `model`, default the run's or
    "student") -> `DepthModel`;
    ``input_size`` (H, W): the network input of a model made for another frame size (default 480x640)."""
    return DepthModel(path, model=model, num_threads=num_threads, input_size=input_size)
