"""A checked export: the `.tflite` file of one quantisation mode with its GPU delegate check, its Keras vs TFLite
parity check and its model card, in that order (the library behind ``export/export_tflite.py``).

    deploy = build_deploy_from_weights("runs/demo/best.weights.h5")
    for quant in parse_quants(["fp32", "int8"]):
        export_checked(deploy, quant, f"artifacts/litedepth_{quant}.tflite", ExportOptions(weights=...),
                       representative=representative_images(...) if quant == "int8" else None)

* the GPU delegate check (`litedepth_tf.tflite.gpu_check`) runs on the flatbuffer before the file is written, and
  is printed as a compact op report; with ``require_gpu_compatible`` an op that would fall back to the CPU raises
  `GpuIncompatibleError` and nothing is written (the previous file and card stay);
* the parity check (`litedepth_tf.tflite.parity`; int8 on three calibration frames, its calibrated range) raises
  `ParityError` when the file does not reproduce the Keras deploy model;
* the model card `<name>.card.json` (`litedepth_tf.tflite.model_card`) records the tensors, the quantisation, the
  parity figures, the GPU verdict, the SHA-256 of the run's flags.txt and an evaluation, if given.
"""

from __future__ import annotations

import dataclasses
import os

import litedepth_tf
from litedepth_tf.common.cli import InputError
from litedepth_tf.common.constants import MAX_DEPTH
from litedepth_tf.common.sizes import network_size
from litedepth_tf.models.upsample import apply_upsample, resolve_upsample
from litedepth_tf.tflite import gpu_check, model_card
from litedepth_tf.tflite.export import QUANT_MODES, export_tflite
from litedepth_tf.tflite.parity import run_export_parity_test
from litedepth_tf.tflite.runtime import TFLiteModel

GpuIncompatibleError = gpu_check.GpuIncompatibleError


@dataclasses.dataclass
class ExportOptions:
    """How every file of one export run is made and checked (the flags of export_tflite.py)."""

    weights: str | None = None  # the Keras weights the deploy model came from (for the card; None: random init)
    upsample: str = "auto"  # final upsampling: auto | resize | conv (`litedepth_tf.models.upsample`)
    int8_io: str = "float32"  # int8 input/output tensors: float32 | uint8
    merge_normalization: bool = True
    parity: bool = True
    require_gpu_compatible: bool = False
    saved_model_dir: str | None = None  # also keep the intermediate SavedModel here
    created_by: str = "export/export_tflite.py"


def parse_quants(values) -> list:
    """Quantisation modes, each once, in the order given; an unknown one is an input error naming it."""
    quants = []
    for v in values:
        q = v.strip().lower()
        if q not in QUANT_MODES:
            raise InputError(f"--quant: {v!r} is not a quantisation mode (one or more of {', '.join(QUANT_MODES)})")
        if q not in quants:
            quants.append(q)
    if not quants:
        raise InputError(f"--quant: give one or more of {', '.join(QUANT_MODES)}")
    return quants


def export_checked(deploy, quant: str, out: str, options: ExportOptions, representative=None, evaluation=None,
                   log=print) -> str:
    """`deploy` (the deploy model at its frame size) exported in mode `quant` to `out`: GPU check, file, parity,
    model card (see the module docstring); `representative`: int8 calibration images; `evaluation`: the card's
    evaluation entry (`model_card.evaluation_entry`). Returns `out`."""
    model = apply_upsample(deploy, quant, options.upsample)
    gpu = {}

    def check_gpu(data):  # before the file is written: a required but failed check leaves the old file alone
        gpu["report"] = gpu_check.check_gpu_compatibility(data)
        gpu["report"].path = out
        log(gpu_check.format_report(gpu["report"]))
        if options.require_gpu_compatible and not gpu["report"].compatible:
            raise GpuIncompatibleError(gpu["report"].error_message() + " (--require_gpu_compatible; nothing "
                                       "written)")

    path = export_tflite(model, out, quant, representative, options.int8_io, options.saved_model_dir,
                         before_write=check_gpu)
    frame = tuple(int(d) for d in model.input.shape[1:3])
    net = network_size(frame)
    log(f"wrote {path} ({os.path.getsize(path) / 1e6:.3f} MB, {quant}; [1,{frame[0]},{frame[1]},3] -> "
        f"[1,{frame[0]},{frame[1]},1], network {net[0]}x{net[1]})")
    parity = None
    if options.parity and options.int8_io == "float32":
        inputs = None
        if representative is not None:  # int8: compare on real frames (its calibrated range), not on noise
            inputs = [batch[0] for _, batch in zip(range(3), representative())]
        report = run_export_parity_test(model, quant, tflite_path=path, inputs=inputs)
        log(f"parity Keras vs TFLite: max |diff| {report.max_abs_diff:.2e} m, mean {report.mean_abs_diff:.2e} m "
            f"over {report.num_inputs} inputs (tolerance {report.tolerance:g} m)")
        parity = {k: v for k, v in dataclasses.asdict(report).items() if k not in ("tflite_path", "tflite_bytes")}
        parity["reference"] = "Keras deploy model, " + ("3 calibration frames" if inputs else "3 synthetic images")
    tfl = TFLiteModel(path, check_signature=False)
    card = model_card.build_card(path, tfl.input, tfl.output, quant, weights=options.weights,
                                 upsample=resolve_upsample(options.upsample, quant,
                                                           getattr(deploy, "final_resize", "bilinear")),
                                 merge_normalization=options.merge_normalization, parity=parity,
                                 gpu=gpu["report"].summary(), evaluation=evaluation,
                                 created_by=options.created_by, version=litedepth_tf.__version__,
                                 max_depth=getattr(model, "depth_range", MAX_DEPTH))
    log(f"wrote {model_card.write_card(path, card)} (model card)")
    return path
