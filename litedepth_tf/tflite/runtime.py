"""Running `.tflite` depth models with the LiteRT interpreter (`ai_edge_litert`, not the deprecated tf.lite)."""

from __future__ import annotations

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH

EXPECTED_INPUT = (1, INPUT_HEIGHT, INPUT_WIDTH, 3)
EXPECTED_OUTPUT = (1, INPUT_HEIGHT, INPUT_WIDTH, 1)


def _interpreter(path, num_threads):
    return Interpreter(model_path=path, num_threads=num_threads)


class TFLiteModel:
    """A `.tflite` depth model: `predict(images [1,H,W,3] raw 0..255) -> depth [1,H,W,1] metres`.

    Handles float32 and uint8 (quantised) input/output tensors. `check_signature=True` (default) insists on
    the LiteDepth deploy signature [1,480,640,3] -> [1,480,640,1] (``expected_size=(H, W)``: [1,H,W,3] ->
    [1,H,W,1], e.g. a KITTI export at 352x1216; ``"any"``: any H, W with the output the input's size) and raises a
    ValueError naming the file.
    """

    def __init__(self, path, num_threads: int | None = None, check_signature: bool = True, expected_size=None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"TFLite model not found: {self.path!r}")
        try:
            self.interpreter = _interpreter(self.path, num_threads)
            self.interpreter.allocate_tensors()
        except Exception as err:  # noqa: BLE001 - name the file
            raise ValueError(f"{self.path!r} is not a loadable .tflite model: {err}") from err
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.path!r}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        self.output_shape = tuple(int(d) for d in self.output["shape"])
        if check_signature:
            if expected_size == "any":
                expected_size = self.input_shape[1:3] if len(self.input_shape) == 4 else (INPUT_HEIGHT, INPUT_WIDTH)
            if expected_size is None:
                self.check_signature()
            else:
                h, w = (int(v) for v in expected_size)
                self.check_signature((1, h, w, 3), (1, h, w, 1))

    def check_signature(self, expected_input=EXPECTED_INPUT, expected_output=EXPECTED_OUTPUT):
        problems = []
        if self.input_shape != tuple(expected_input):
            problems.append(f"input shape {self.input_shape} (expected {tuple(expected_input)})")
        if self.output_shape != tuple(expected_output):
            problems.append(f"output shape {self.output_shape} (expected {tuple(expected_output)})")
        for name, det in (("input", self.input), ("output", self.output)):
            if det["dtype"] not in (np.float32, np.uint8, np.int8):
                problems.append(f"{name} dtype {np.dtype(det['dtype']).name} (expected float32 or uint8)")
        if problems:
            raise ValueError(f"{self.path!r} does not have the LiteDepth signature: " + "; ".join(problems))

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the model's input."""
        return tuple(self.input_shape[1:3])

    @property
    def input_dtype(self):
        return np.dtype(self.input["dtype"])

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        if tuple(images.shape) != self.input_shape:
            raise ValueError(f"{self.path!r} expects input of shape {self.input_shape}, got {tuple(images.shape)}")
        x = images
        if self.input_dtype != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(images / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, dtype=self.input_dtype))  # copied in
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if y.dtype != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32, copy=False)  # get_tensor returned a copy already

    def invoke(self) -> None:
        """Runs the model on whatever is in its input tensor (for latency measurements)."""
        self.interpreter.invoke()
