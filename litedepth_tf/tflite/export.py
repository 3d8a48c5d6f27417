"""Keras -> SavedModel (`model.export`) -> `.tflite`, fp32 / fp16 / int8, written atomically.

The same conversion as the command line tool:

    tflite_convert --saved_model_dir=artifacts/saved_model --output_file=artifacts/litedepth_fp32.tflite

int8 is full-integer (weights and activations) calibrated with a representative data set drawn from the real
evaluation pipeline (`representative_images`); the model's input/output stay float32 unless
`int8_io="uint8"` is asked for (then the input is raw 0..255 uint8 and the output uint8 with a scale).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH
from litedepth_tf.common.files import atomic_write_bytes, write_error
from litedepth_tf.models.presets import get_builder, preset_for_weights
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite.compact import compact_tensor_names

QUANT_MODES = ("fp32", "fp16", "int8")


def tflite_name(quant: str, int8_io: str = "float32") -> str:
    """The file name of the export of mode `quant` (`litedepth_<quant>.tflite`, what export_tflite.py writes by
    default and what the quant report and the benchmark look for)."""
    return f"litedepth_{quant}" + ("_uint8io" if quant == "int8" and int8_io == "uint8" else "") + ".tflite"


def export_saved_model(model, saved_model_dir: str) -> str:
    """Writes a SavedModel with a `serve` signature (Keras 3 `model.export`). The export goes to a hidden temp
    folder next to `saved_model_dir` that is renamed into place when complete: a kill leaves the old folder, the
    new one or (between the two renames) none, never a half-written SavedModel under that name. A write that fails
    (full disk, ...) raises `WriteError` naming the folder; the previous folder is then left in place."""
    saved_model_dir = os.fspath(saved_model_dir)
    parent, name = os.path.split(os.path.abspath(saved_model_dir))
    existed = os.path.exists(saved_model_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise write_error(saved_model_dir, err, existed, what="SavedModel") from err
    old = os.path.join(tmp, "old")
    try:
        model.export(os.path.join(tmp, "new"), format="tf_saved_model", verbose=False)
        if existed:
            os.replace(saved_model_dir, old)
        os.replace(os.path.join(tmp, "new"), saved_model_dir)
    except (OSError, tf.errors.OpError) as err:
        if os.path.exists(old) and not os.path.exists(saved_model_dir):
            os.replace(old, saved_model_dir)  # put the previous one back
        if isinstance(err, InputError):
            raise
        raise write_error(saved_model_dir, err, existed, what="SavedModel") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return saved_model_dir


def convert_saved_model(
    saved_model_dir: str,
    quant: str = "fp32",
    representative_images: Callable[[], Iterable[np.ndarray]] | None = None,
    int8_io: str = "float32",
) -> bytes:
    """Converts a SavedModel to TFLite flatbuffer bytes."""
    if quant not in QUANT_MODES:
        raise ValueError(f"quant must be one of {QUANT_MODES}, got {quant!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "int8":
        if representative_images is None:
            raise ValueError("quant='int8' needs representative_images (calibration images from the data pipeline)")
        if int8_io not in ("float32", "uint8"):
            raise ValueError(f"int8_io must be 'float32' or 'uint8', got {int8_io!r}")

        def gen():
            for image in representative_images():
                yield [np.asarray(image, dtype=np.float32).reshape(1, *np.shape(image)[-3:])]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io == "uint8":
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
    data = converter.convert()
    if quant == "int8":  # fused-op tensor names are ~5 % of the int8 file (litedepth_tf.tflite.compact)

        data = compact_tensor_names(data)
    return data


def export_tflite(
    model,
    out_path: str,
    quant: str = "fp32",
    representative_images: Callable[[], Iterable[np.ndarray]] | None = None,
    int8_io: str = "float32",
    saved_model_dir: str | None = None,
    before_write: Callable[[bytes], None] | None = None,
) -> str:
    """Keras model -> SavedModel -> `.tflite` at `out_path` (atomic). Returns `out_path`.

    `saved_model_dir` keeps the intermediate SavedModel (for `tflite_convert`); by default a temp dir is used.
    `before_write(data)` sees the flatbuffer before it is written; an exception there leaves `out_path` as it was
    (e.g. a GPU-compatibility requirement, `litedepth_tf.tflite.gpu_check`).
    """
    if quant not in QUANT_MODES:
        raise ValueError(f"quant must be one of {QUANT_MODES}, got {quant!r}")
    with tempfile.TemporaryDirectory(prefix="litedepth_export_") as tmp:
        sm_dir = saved_model_dir or os.path.join(tmp, "saved_model")
        export_saved_model(model, sm_dir)
        data = convert_saved_model(sm_dir, quant, representative_images, int8_io)
    if before_write is not None:
        before_write(data)
    return atomic_write_bytes(out_path, data)


def build_deploy_from_weights(weights=None, merge_normalization: bool = True, frame_size=(INPUT_HEIGHT, INPUT_WIDTH),
                              model: str | None = None, net_size=None, final_resize: str = "nearest"):
    """The deploy model (merged normalisation by default) from trainer weights, or a fresh random student, at
    ``frame_size`` in and out (e.g. KITTI 352x1216; the network at `common.sizes.network_size` of it), ending with
    a ``final_resize`` ("nearest", the authors', or "bilinear") of the depth to the frame. ``model``: the preset
    (default: the run's, `presets.preset_for_weights`)."""

    return build_deploy_model(get_builder(preset_for_weights(weights, model))(weights=weights),
                              merge_normalization=merge_normalization, frame_size=frame_size, net_size=net_size,
                              final_resize=final_resize)
