"""One parity check for every exported model: Keras vs TFLite (LiteRT interpreter) on the same inputs.

`run_export_parity_test(model, quant)` exports `model` exactly as users do (`litedepth_tf.tflite.export`), loads the
`.tflite` with the LiteRT interpreter, checks its signature (float32 [1,480,640,3] -> [1,480,640,1]) and compares
outputs on >= 3 inputs (noise, bright borders, a smooth ramp). It catches the Keras 3.15 trap where a `Resizing`
layer leaks `training=True` into a later BatchNorm on export: the TFLite model then normalises with batch statistics
and differs from Keras by far more than the tolerance (tests/test_parity.py proves it).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.tflite.export import export_tflite
from litedepth_tf.tflite.runtime import TFLiteModel

# Max abs depth difference (metres) allowed between Keras and TFLite, for a depth head of constants.MAX_DEPTH (40 m);
# a wider head (student_80m: clamped at 80 m) or larger outputs get it scaled by range / 40 m (float rounding scales
# with the values).
TOLERANCES = {"fp32": 1e-4, "fp16": 5e-2, "int8": 4.0}  # int8: a gross-breakage check (one output step is
# up to 40/255 = 0.16 m; far pixels of a trained model differ by ~10 steps); int8 accuracy is judged on data by the
# quantisation report (metric drift vs fp32), not here


class ParityError(AssertionError):
    """The exported model does not reproduce the Keras model."""


@dataclasses.dataclass
class ParityReport:
    quant: str
    max_abs_diff: float
    mean_abs_diff: float
    tolerance: float
    num_inputs: int
    tflite_path: str
    tflite_bytes: int


def parity_inputs(num_inputs: int = 3, seed: int = 0, height: int = INPUT_HEIGHT, width: int = INPUT_WIDTH):
    """Deterministic raw-RGB test images: uniform noise, noise with saturated (255) borders, a smooth ramp,
    then more noise images if more are asked for."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(max(num_inputs, 3)):
        if i == 1:
            img = rng.uniform(0, 255, (height, width, 3))
            b = max(height, width) // 16
            img[:b], img[-b:], img[:, :b], img[:, -b:] = 255.0, 255.0, 255.0, 255.0
        elif i == 2:
            yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
            img = np.stack([255 * yy, 255 * xx, 127.5 + 100 * np.sin(6 * xx * yy)], axis=-1)
        else:
            img = rng.uniform(0, 255, (height, width, 3))
        images.append(img[None].astype(np.float32))
    return images[: max(num_inputs, 3)]


def compare(model, tflite: TFLiteModel, inputs, return_peak: bool = False):
    """(max, mean) |Keras - TFLite| over ``inputs``; with ``return_peak`` also the largest |Keras output|."""
    diffs, peak = [], 0.0
    for x in inputs:
        expected = np.asarray(model(x, training=False))
        got = tflite.predict(x)
        if expected.shape != got.shape:
            raise ParityError(f"{tflite.path}: output shape {got.shape} != Keras output shape {expected.shape}")
        diffs.append(np.abs(expected.astype(np.float64) - got))
        peak = max(peak, float(np.abs(expected).max()))
    diffs = np.stack(diffs)
    if return_peak:
        return float(diffs.max()), float(diffs.mean()), peak
    return float(diffs.max()), float(diffs.mean())


def run_export_parity_test(
    model,
    quant: str = "fp32",
    tflite_path: str | None = None,
    num_inputs: int = 3,
    tolerance: float | None = None,
    representative_images=None,
    check_signature: bool = True,
    seed: int = 0,
    inputs=None,
) -> ParityReport:
    """Exports `model` (unless `tflite_path` exists already), then asserts Keras/TFLite parity.

    `inputs`: images to compare on instead of the synthetic `parity_inputs` (int8: real frames, because an int8
    model is only calibrated for the range of real images and noise may push activations out of it).

    Raises ParityError (an AssertionError) naming the file, the max difference and the tolerance."""
    scaled = tolerance is None
    tolerance = TOLERANCES[quant] if tolerance is None else tolerance
    with tempfile.TemporaryDirectory(prefix="litedepth_parity_") as tmp:
        path = tflite_path or os.path.join(tmp, f"model_{quant}.tflite")
        if not os.path.exists(path):
            export_tflite(model, path, quant=quant, representative_images=representative_images)
        frame = tuple(int(d) for d in model.input.shape[1:3])
        tflite = TFLiteModel(path, check_signature=check_signature, expected_size=frame)
        if inputs is None:
            inputs = parity_inputs(num_inputs, seed, *tflite.input_shape[1:3])
        max_diff, mean_diff, peak = compare(model, tflite, inputs, return_peak=True)
        size = os.path.getsize(path)
    if scaled:
        tolerance *= max(1.0, float(getattr(model, "depth_range", MAX_DEPTH)) / MAX_DEPTH, peak / MAX_DEPTH)
    report = ParityReport(quant, max_diff, mean_diff, tolerance, len(inputs), path, size)
    if not max_diff < tolerance:
        raise ParityError(
            f"{path}: Keras vs TFLite ({quant}) max abs diff {max_diff:.3g} m >= tolerance {tolerance:g} m "
            f"(mean {mean_diff:.3g} m over {len(inputs)} inputs). A BatchNorm running in training mode in the "
            "exported graph (Resizing-layer trap) or a broken conversion gives this."
        )
    return report
