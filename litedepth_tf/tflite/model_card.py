"""A model card next to every exported `.tflite`: what the file expects, what it returns, where it came from.

`litedepth_fp32.tflite` -> `litedepth_fp32.card.json` (written atomically by `export/export_tflite.py`):

* ``model``: file name, size, SHA-256 of the file, quantisation mode, final upsampling, merged normalisation;
* ``input`` / ``output``: tensor name, shape, dtype, value range and, for uint8 / int8 tensors, the quantisation
  (``real = scale * (q - zero_point)``); input raw RGB 0..255 (the model normalises inside), output depth in
  metres, valid range [MIN_DEPTH, the depth head's range] (40 m; 80 m for ``student_80m``);
* ``training``: the weights file and the SHA-256 of the run's ``flags.txt`` next to it (null when absent);
* ``evaluation``: the metrics and data set of an `evaluate` report (``--eval_report``), or null;
* ``parity``: Keras vs TFLite max / mean |difference| and the tolerance, or null (``--noparity``);
* ``gpu_delegate``: the GPU compatibility verdict (`litedepth_tf.tflite.gpu_check`), or null.

`check_card(path, tflite)` (called by `litedepth_tf.load`, `predict` and `evaluate`) reads the card when there is
one and raises `ModelCardError` (an input error: exit 2 in the commands) when it contradicts the file: another
SHA-256 (the card was written for another export), another input or output shape, dtype or quantisation. No card:
nothing is checked (cards are optional). This module needs no TensorFlow (a `.tflite` runs without it).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.constants import MAX_DEPTH, MIN_DEPTH
from litedepth_tf.common.files import atomic_write_json

CARD_FORMAT = "litedepth_tf model card"
CARD_VERSION = 1
CARD_SUFFIX = ".card.json"


class ModelCardError(InputError):
    """A model card that cannot be read or that contradicts its `.tflite` (the message names both files)."""


def card_path(tflite_path) -> str:
    """`dir/name.tflite` -> `dir/name.card.json`."""
    root, _ = os.path.splitext(os.fspath(tflite_path))
    return root + CARD_SUFFIX


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_description(detail: dict, role: str, max_depth: float = MAX_DEPTH) -> dict:
    """One interpreter input/output detail -> the card's entry (name, shape, dtype, range, units, quantisation);
    ``max_depth``: the top of the output's range (the depth head's: 40 m, 80 m for ``student_80m``)."""
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail.get("quantization", (0.0, 0))
    entry = {"name": detail["name"], "shape": [int(d) for d in detail["shape"]], "dtype": dtype.name,
             "quantization": None}
    if dtype != np.float32 and scale:
        entry["quantization"] = {"scale": float(scale), "zero_point": int(zero),
                                 "real_value": "scale * (q - zero_point)"}
    if role == "input":
        entry.update(layout="NHWC, RGB", value_range=[0.0, 255.0],
                     meaning="raw RGB 0..255 (not normalised: the model normalises inside)")
        if entry["quantization"]:
            entry["meaning"] += "; quantised with the parameters above"
    else:
        entry.update(layout="NHWC, 1 channel", units="metres", valid_range=[MIN_DEPTH, float(max_depth)],
                     meaning="metric depth per pixel at the input's resolution")
    return entry


def flags_checksum(weights) -> dict:
    """{"weights", "flags_file", "flags_sha256"}: the run's `flags.txt` next to the weights, if there is one."""
    if not weights:
        return {"weights": None, "flags_file": None, "flags_sha256": None}
    flags_file = os.path.join(os.path.dirname(os.path.abspath(os.fspath(weights))), "flags.txt")
    if not os.path.isfile(flags_file):
        return {"weights": os.fspath(weights), "flags_file": None, "flags_sha256": None}
    return {"weights": os.fspath(weights), "flags_file": flags_file, "flags_sha256": sha256_file(flags_file)}


def evaluation_entry(report_path, allowed_models=()) -> dict:
    """The card's ``evaluation`` from an `evaluate --out` report: its metrics, data set, split and image count.
    `allowed_models`: the files the report may be about (the weights the export came from, the exported file);
    a report about another model is refused (ModelCardError naming both)."""
    path = os.fspath(report_path)
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
        metrics = {k: float(v) for k, v in report["metrics"].items() if v is not None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelCardError(f"--eval_report {path!r}: not a readable evaluation report ({err})") from None
    model = report.get("model")
    allowed = {os.path.realpath(os.fspath(m)) for m in allowed_models if m}
    if allowed and (not isinstance(model, str) or os.path.realpath(model) not in allowed):
        raise ModelCardError(f"--eval_report {path!r} evaluated {model!r}, not this export or its weights "
                             f"({', '.join(sorted(allowed))})")
    return {"report": path, "model": model, "kind": report.get("kind"), "data_root": report.get("data_root"),
            "split": report.get("split"), "n_images": report.get("n_images"), "metrics": metrics,
            "baseline_metrics": (report.get("baseline") or {}).get("metrics")}


def build_card(tflite_path, input_detail: dict, output_detail: dict, quant: str, *, weights=None, upsample=None,
               merge_normalization=None, parity=None, gpu=None, evaluation=None, created_by=None,
               version=None, max_depth: float = MAX_DEPTH) -> dict:
    """The card dict for an exported file (see the module docstring); `parity` a dict or None, `gpu` the
    `GpuReport.summary()` dict or None, `evaluation` an `evaluation_entry` or None; `max_depth` the depth head's
    range (the deploy model's ``depth_range``)."""
    path = os.fspath(tflite_path)
    return {
        "format": CARD_FORMAT, "version": CARD_VERSION,
        "model": {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": sha256_file(path),
                  "quantization": quant, "upsample": upsample, "merge_normalization": merge_normalization,
                  "litedepth_tf": version, "created_by": created_by},
        "input": tensor_description(input_detail, "input"),
        "output": tensor_description(output_detail, "output", max_depth),
        "training": flags_checksum(weights),
        "evaluation": evaluation,
        "parity": parity,
        "gpu_delegate": gpu,
    }


def check_export(tflite_path, quant: str, weights, upsample: str) -> dict:
    """The card of an already exported file that is to be reused for `weights` as `quant` with `upsample`; ValueError
    (naming the file and the mismatch) if the file or its card is missing, or the card says another quantisation,
    upsampling, weights file, or a file with other bytes (SHA-256)."""
    path = os.fspath(tflite_path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file to reuse (export it first, or run without reusing)")
    card = read_card(path)
    if card is None:
        raise ValueError(f"{path}: no model card next to it, so its source cannot be checked; export it again")
    model, trained = card.get("model", {}), card.get("training", {})
    problems = []
    if model.get("quantization") != quant:
        problems.append(f"quantization {model.get('quantization')!r}, not {quant!r}")
    if model.get("upsample") != upsample:
        problems.append(f"upsample {model.get('upsample')!r}, not {upsample!r}")
    want = None if weights is None else os.fspath(weights)
    if trained.get("weights") != want:
        problems.append(f"exported from weights {trained.get('weights')!r}, not {want!r}")
    if not problems and model.get("sha256") != sha256_file(path):
        problems.append("its bytes changed since the card was written (SHA-256)")
    if problems:
        raise ValueError(f"{path}: cannot reuse it: " + "; ".join(problems))
    return card


def write_card(tflite_path, card: dict) -> str:
    """Writes `card` next to `tflite_path` atomically; returns the card's path."""
    return atomic_write_json(card_path(tflite_path), card)


def read_card(tflite_path) -> dict | None:
    """The card next to `tflite_path`, or None if there is none; ModelCardError if it is not a readable card."""
    path = card_path(tflite_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            card = json.load(fh)
    except (OSError, ValueError) as err:
        raise ModelCardError(f"model card {path!r} of {os.fspath(tflite_path)!r} is unreadable ({err}); "
                             "re-export the model or delete the card") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelCardError(f"{path!r} is not a litedepth_tf model card (no \"format\": {CARD_FORMAT!r}); "
                             "re-export the model or delete the file")
    return card


def contradictions(card: dict, sha256: str, input_detail: dict, output_detail: dict) -> list:
    """Every way `card` disagrees with the file (its SHA-256 and interpreter details); empty when they agree."""
    problems = []
    if card.get("model", {}).get("sha256") not in (None, sha256):
        problems.append(f"it was written for another file (SHA-256 {card['model']['sha256'][:12]}..., "
                        f"the file has {sha256[:12]}...)")
    for role, detail in (("input", input_detail), ("output", output_detail)):
        want, got = card.get(role) or {}, tensor_description(detail, role)
        for key in ("shape", "dtype"):
            if key in want and want[key] != got[key]:
                problems.append(f"{role} {key} {want[key]} (the file has {got[key]})")
        wq, gq = want.get("quantization"), got["quantization"]
        if "quantization" in want and (wq is None) != (gq is None):
            problems.append(f"{role} quantisation {wq} (the file has {gq})")
        elif wq and gq and (not np.isclose(wq.get("scale", 0.0), gq["scale"], rtol=1e-6)
                            or wq.get("zero_point") != gq["zero_point"]):
            problems.append(f"{role} quantisation scale {wq.get('scale')} / zero point {wq.get('zero_point')} "
                            f"(the file has {gq['scale']} / {gq['zero_point']})")
    return problems


def check_card(tflite_path, input_detail: dict, output_detail: dict) -> dict | None:
    """Reads the card of `tflite_path` (None if none) and raises ModelCardError, in one line naming the card, the
    file and every contradiction, when it does not describe the file."""
    card = read_card(tflite_path)
    if card is None:
        return None
    problems = contradictions(card, sha256_file(tflite_path), input_detail, output_detail)
    if problems:
        raise ModelCardError(f"model card {card_path(tflite_path)!r} contradicts {os.fspath(tflite_path)!r}: "
                             + "; ".join(problems) + ". Re-export the model (export/export_tflite.py) or delete "
                             "the card")
    return card


def describe(card: dict) -> str:
    """One line for logs: quantisation, input, evaluation, parity and GPU verdict of a card."""
    m, i = card.get("model", {}), card.get("input", {})
    parts = [f"{m.get('quantization')}", f"input {i.get('dtype')} {i.get('shape')}"]
    ev = card.get("evaluation")
    if ev and ev.get("metrics"):
        si = next((v for k, v in ev["metrics"].items() if "si" in k.lower() and "rmse" in k.lower()), None)
        if si is not None:
            whose = "its Keras weights: " if ev.get("kind") == "keras" else ""
            parts.append(f"{whose}si-RMSE {si:.4f} on {ev.get('n_images')} images of {ev.get('split')}")
    if card.get("parity"):
        parts.append(f"parity max |diff| {card['parity']['max_abs_diff']:.2e} m")
    gpu = card.get("gpu_delegate")
    if gpu:
        parts.append("GPU delegate: " + ("compatible" if gpu.get("compatible") else
                                         f"{len(gpu.get('incompatible', []))} op(s) fall back to the CPU"))
    return ", ".join(parts)
