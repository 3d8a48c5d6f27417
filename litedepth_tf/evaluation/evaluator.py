"""The evaluation loop: a model (Keras `.weights.h5`, `.tflite`, `keras.Model` or a predict function) over a split.

    report = evaluate_model("runs/demo/best.weights.h5", "data/synthetic", "local_val")

Keras weights are loaded into a preset (`litedepth_tf.models.presets`) and run through the deploy view
(`models.student.build_deploy_model`, normalisation merged into the first conv), the same [1,480,640,3] ->
[1,480,640,1] graph that is exported; a `.tflite` runs in the LiteRT interpreter (`tflite.runtime.TFLiteModel`,
signature checked). Metrics: `evaluation.metrics` (per image, then the mean over images). The report also scores
a constant-depth baseline (every pixel = the median GT depth of ``baseline_split``, default train; if that split
is missing, the evaluated split's own GT median, which the report says) and the mean host latency per image.
``save_predictions`` writes uint16 millimetre PNGs (the MAI format). The command is `litedepth_tf.evaluate`.

Other data sets (``dataset=`` a `data.datasets` preset or name, ``split_file=``): the frames are listed and decoded
as the preset says, the model runs at the preset's frame size (deploy view / `.tflite` of [1,H,W,3] -> [1,H,W,1],
e.g. KITTI 352x1216), and the report adds the standard protocol (`metrics.StandardMetrics`: the public
toolboxes' metrics on the evaluation crop and valid range, per image then the mean) under ``standard_metrics``
with its settings under ``protocol``; the MAI metrics stay under ``metrics`` (computed as before, on the full
frame). ``eval_crop`` overrides the preset's crop, ``align="median"`` median-scales each prediction for the
standard metrics (relative-depth models; the MAI si-RMSE is scale-invariant anyway).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.data import datasets
from litedepth_tf.common.images import depth_to_mm, write_png
from litedepth_tf.common.progress import progress_bar
from litedepth_tf.data.bad_samples import BadSampleCounter, bad_sample_error
from litedepth_tf.data.pipeline import list_pairs, make_dataset
from litedepth_tf.evaluation.metrics import (
    STANDARD_KEYS,
    VALID_EPS_MM,
    MAIMetrics,
    StandardMetrics,
    image_metrics,
    mean_metrics,
    median_train_depth,
)
from litedepth_tf.models.presets import get_builder, preset_for_weights
from litedepth_tf.models.student import build_deploy_model, can_merge_normalization
from litedepth_tf.tflite.model_card import card_path, check_card
from litedepth_tf.tflite.runtime import TFLiteModel

LAYOUT = "ROOT/<split>/{rgb,depth}/*.png (RGB PNGs and uint16 millimetre depth PNGs with matching names)"
TABLE_KEYS = (("si_rmse", "si-RMSE"), ("rmse", "RMSE"), ("log10", "log10"), ("abs_rel", "REL"),
              ("sq_rel", "sqREL"), ("delta1", "d1"), ("delta2", "d2"), ("delta3", "d3"))


def check_data_root(data_root, split: str) -> str:
    """Raises FileNotFoundError (with the expected layout) unless ``data_root/split/{rgb,depth}`` exist."""
    root = os.fspath(data_root) if data_root is not None else ""
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(f"data root {root!r} does not exist; expected the layout {LAYOUT}")
    base = os.path.join(root, split)
    missing = [d for d in ("rgb", "depth") if not os.path.isdir(os.path.join(base, d))]
    if missing:
        have = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        raise FileNotFoundError(f"split {split!r} is missing {', '.join(missing)}/ under {root!r} (folders there: "
                                f"{have or 'none'}); expected the layout {LAYOUT}")
    return base


def load_predict_fn(path_or_model, model_name: str | None = None, num_threads: int | None = None,
                    frame_size=(INPUT_HEIGHT, INPUT_WIDTH)):
    """(predict `[1,H,W,3] raw RGB -> [1,H,W,1] metres`, description dict) for a `.tflite` path (its signature
    must be at ``frame_size``), a `.weights.h5` path (loaded into preset `model_name`, default the run's:
    `presets.preset_for_weights`), a Keras model (train view
    with a dict output -> deploy view at ``frame_size``; otherwise used as is) or a callable."""

    frame_size = tuple(int(v) for v in frame_size)
    if isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        if path.endswith(".tflite"):
            expected = None if frame_size == (INPUT_HEIGHT, INPUT_WIDTH) else frame_size
            tfl = TFLiteModel(path, num_threads=num_threads, expected_size=expected)
            card = check_card(path, tfl.input, tfl.output)  # a card that contradicts the file: ModelCardError
            desc = {"model": path, "kind": "tflite", "io": f"{tfl.input_dtype.name}"}
            if card is not None:
                desc["model_card"] = card_path(path)
            return tfl.predict, desc
        if not path.endswith(".h5"):
            raise ValueError(f"{path!r}: expected a .tflite model or Keras .weights.h5 weights")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file not found: {path!r}")

        model_name = preset_for_weights(path, model_name)
        model = get_builder(model_name)(weights=path)
        deploy = build_deploy_model(model, merge_normalization=can_merge_normalization(model), frame_size=frame_size)
        desc = {"model": path, "kind": "keras", "model_name": model_name}
    elif isinstance(path_or_model, keras.Model):
        model = path_or_model
        deploy = (build_deploy_model(model, merge_normalization=can_merge_normalization(model),
                                     frame_size=frame_size)
                  if isinstance(model.output, dict) else model)
        desc = {"model": f"<keras.Model {model.name}>", "kind": "keras"}
    elif callable(path_or_model):
        return path_or_model, {"model": repr(path_or_model), "kind": "callable"}
    else:
        raise TypeError(f"cannot evaluate {type(path_or_model).__name__}: pass a .tflite / .weights.h5 path, a "
                        "keras.Model or a predict function")
    fn = tf.function(lambda x: deploy(x, training=False), reduce_retracing=True)
    return fn, desc


def baseline_median(data_root, split: str, baseline_split: str = "train", progress: bool = True,
                    max_depth: float = MAX_DEPTH, depth_scale: float = 1000.0):
    """(median depth in metres, source note): the median GT depth of `baseline_split`, or of `split` if that
    split is missing. Pixels beyond `max_depth` (`constants.MAX_DEPTH`) are left out, as the input pipeline
    does; ``depth_scale``: stored values per metre."""

    kw = dict(max_depth=max_depth, progress=progress, depth_scale=depth_scale)
    if baseline_split and os.path.isdir(os.path.join(os.fspath(data_root), baseline_split, "depth")):
        return median_train_depth(data_root, baseline_split, **kw), f"median GT depth of split {baseline_split!r}"
    return median_train_depth(data_root, split, **kw), \
        f"median GT depth of the evaluated split {split!r} (split {baseline_split!r} is missing)"


def evaluate_model(path_or_model, data_root, split: str = "local_val", max_images: int = 0,
                   model_name: str | None = None, baseline: bool = True, baseline_split: str = "train",
                   save_predictions: str | None = None, num_threads: int | None = None,
                   progress: bool = True, dataset=None, split_file=None, eval_crop: str | None = None,
                   align: str = "none") -> dict:
    """MAI metrics of a model on ``data_root/split`` (first `max_images` images; 0 = all).

    Returns ``{"metrics", "baseline" (None if `baseline` is False), "model", "kind", "n_images" (run),
    "n_scored" / "n_skipped" (images with / without a valid GT pixel), "bad_files" (pairs left out because a
    file is unreadable, corrupt, of the wrong size / mode or has no valid depth pixel; each named in a warning),
    "split", "data_root", "latency_ms_mean", "first_call_ms"}``; "metrics" has `metrics.METRIC_KEYS`. With
    ``dataset`` / ``split_file`` (see the module docstring) also ``"standard_metrics"`` (`STANDARD_KEYS`) and
    ``"protocol"``."""

    protocol = dataset is not None or split_file is not None
    if align not in ("none", "median"):
        raise ValueError(f"align must be 'none' or 'median', got {align!r}")
    preset = datasets.get_preset(dataset)
    folders = preset.layout == "pairs" and split_file is None
    if folders:
        check_data_root(data_root, split)
    if protocol:
        listing = datasets.list_samples(preset, data_root, split, split_file)
        pairs, skipped_none = listing.pairs, listing.skipped_none
    else:
        pairs, skipped_none = list_pairs(data_root, split, check=False), 0
    preset = datasets.resolve_frame_size(preset, pairs)
    total = len(pairs)
    n_target = total if not max_images or max_images <= 0 else min(int(max_images), total)
    # a bad model fails before the baseline
    predict, desc = load_predict_fn(path_or_model, model_name, num_threads, frame_size=preset.frame_size)
    if not baseline:
        median, note = None, None
    elif folders:
        median, note = baseline_median(data_root, split, baseline_split, progress, preset.max_depth,
                                       preset.depth_scale)
    else:
        median, note = _baseline_median_preset(preset, data_root, split, split_file, baseline_split, pairs, progress)
    bad_files = BadSampleCounter()  # unreadable / corrupt / all-invalid pairs: skipped, named in warnings
    data = make_dataset(data_root, split, 1, training=False, bad_sample_counter=bad_files,
                        **(dict(dataset=preset, split_file=split_file) if protocol else {}))
    crop = preset.eval_crop if eval_crop is None else eval_crop
    box = preset.eval_box(crop, *preset.frame_size)
    standard = StandardMetrics(preset.min_depth, preset.max_depth, box, align) if protocol else None

    times, skipped, base_rows = [], [0], []

    def timed(x):
        t0 = time.perf_counter()
        y = predict(x)
        y = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
        times.append(time.perf_counter() - t0)
        return y

    def batches():  # counts images without a valid GT pixel and scores the baseline on the same images
        seen = 0
        for batch in data:
            for gt in batch["depth"].numpy():
                if seen < n_target:
                    if not np.any(gt.astype(np.float64) * 1000.0 > 1.0 + VALID_EPS_MM):
                        skipped[0] += 1
                    if median is not None:
                        base_rows.append(image_metrics(np.full(gt.shape, median), gt))
                seen += 1
            yield batch

    if save_predictions:
        os.makedirs(save_predictions, exist_ok=True)
    name = split if split_file is None else os.path.basename(os.fspath(split_file))
    bar = progress_bar(total=n_target, desc=f"evaluate {name}", unit="image", disable=None if progress else True)

    def on_image(i, rgb_path, pred):
        if save_predictions:
            name = os.path.splitext(os.path.basename(rgb_path))[0] + ".png"
            write_png(os.path.join(save_predictions, name), depth_to_mm(np.asarray(pred)[..., 0]))
        bar.update(1)

    try:
        metrics, _ = evaluate_predict_fn(timed, batches(), max_images=n_target, on_image=on_image, standard=standard)
    except tf.errors.OpError as err:  # e.g. every pair bad: one line naming the files, not TF's op trace
        clean = bad_sample_error(err)
        if clean is None:
            raise
        raise clean from None
    finally:
        bar.close()
    steady = times[1:] if len(times) > 1 else times
    report = {
        "metrics": metrics,
        "baseline": None,
        **desc,
        "n_images": len(times),
        "n_scored": len(times) - skipped[0],
        "n_skipped": skipped[0],
        "bad_files": sorted(bad_files.problems),
        "split": split if split_file is None else os.fspath(split_file),
        "data_root": os.fspath(data_root),
        "latency_ms_mean": 1000.0 * float(np.mean(steady)),
        "first_call_ms": 1000.0 * times[0],
        "latency_note": "host wall time per image (first call excluded from the mean), not the MAI Raspberry Pi "
                        "runtime",
    }
    if median is not None:
        base = mean_metrics(base_rows)
        report["baseline"] = {"median_depth_m": median, "source": note,
                              "metrics": {k: base[k] for k in metrics}, "n_images": base["n_images"]}
    if save_predictions:
        report["predictions_dir"] = os.fspath(save_predictions)
    if standard is not None:
        result = standard.result()
        report["standard_metrics"] = {k: result[k] for k in STANDARD_KEYS}
        report["protocol"] = {"dataset": preset.name, "eval_crop": crop, "crop_box": list(box) if box else None,
                              "min_depth": preset.min_depth, "max_depth": preset.max_depth, "align": align,
                              "depth_scale": preset.depth_scale, "frame_size": list(preset.frame_size),
                              "n_images": result["n_images"], "n_skipped": result["n_skipped"],
                              "split_file": os.fspath(split_file) if split_file else None,
                              "split_file_lines_without_gt": skipped_none}
    return report


def _baseline_median_preset(preset, data_root, split, split_file, baseline_split, pairs, progress):
    """The constant baseline's depth for a preset: the median GT of the preset's training split when it lists
    (no split file given), else of the evaluated samples."""
    if split_file is None and baseline_split and baseline_split != split:
        try:
            train = datasets.list_samples(preset, data_root, baseline_split).pairs
            return (median_train_depth(data_root, baseline_split, max_depth=preset.max_depth, progress=progress,
                                       pairs=train, depth_scale=preset.depth_scale),
                    f"median GT depth of split {baseline_split!r}")
        except datasets.DatasetError:
            pass
    return (median_train_depth(data_root, split, max_depth=preset.max_depth, progress=progress, pairs=pairs,
                               depth_scale=preset.depth_scale),
            "median GT depth of the evaluated samples" + (f" ({os.fspath(split_file)})" if split_file else ""))


def format_table(report: dict) -> str:
    """The MAI metrics table (model row + baseline row) and the latency line."""
    def fmt(v):
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    name = os.path.basename(str(report.get("model", "model")))
    rows = [(name, report["metrics"])]
    if report.get("baseline"):
        rows.append((f"constant {report['baseline']['median_depth_m']:.3f} m", report["baseline"]["metrics"]))
    w = max(12, *(len(r[0]) for r in rows))
    lines = [f"MAI 2022 metrics on {report['split']!r} ({report['n_images']} images"
             + (f", {report['n_skipped']} skipped: no valid GT" if report.get("n_skipped") else "") + ")",
             f"{'':<{w}} " + " ".join(f"{h:>8}" for _, h in TABLE_KEYS)]
    for label, m in rows:
        lines.append(f"{label:<{w}} " + " ".join(f"{fmt(m.get(k)):>8}" for k, _ in TABLE_KEYS))
    if report.get("baseline"):
        lines.append(f"baseline: {report['baseline']['source']}")
    if report.get("bad_files"):
        lines.append(f"{len(report['bad_files'])} bad file(s) left out (unreadable, corrupt, wrong size or mode, "
                     "or no valid depth; named in the warnings above)")
    if report.get("standard_metrics"):
        p, m = report["protocol"], report["standard_metrics"]
        lines.append(f"standard metrics ({p['dataset']}: eval crop {p['eval_crop']}, {p['min_depth']:g} < gt < "
                     f"{p['max_depth']:g} m, align {p['align']}; {p['n_images']} images"
                     + (f", {p['n_skipped']} without a valid pixel" if p["n_skipped"] else "")
                     + (f"; {p['split_file_lines_without_gt']} split-file line(s) without GT skipped"
                        if p.get("split_file_lines_without_gt") else "") + ")")
        lines.append(" ".join(f"{k:>8}" for k in STANDARD_KEYS))
        lines.append(" ".join(f"{fmt(m.get(k)):>8}" for k in STANDARD_KEYS))
    lines.append(f"mean latency: {report['latency_ms_mean']:.1f} ms / image on this host "
                 f"(first call {report['first_call_ms']:.0f} ms; {report['kind']})")
    return "\n".join(lines)


def read_report(path: str, flag: str = "--compare_to") -> dict:
    """An `evaluate --out` report to compare with; ValueError (one line naming `flag` and the file) unless it is
    readable JSON with its metrics."""
    try:
        with open(path, encoding="utf-8") as fh:
            reference = json.load(fh)
        reference["metrics"].items()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{flag}={path}: not a readable evaluation report ({err})") from None
    return reference


def print_comparison(report: dict, reference: dict, reference_path: str, tol: float = 1e-3, what: str = "") -> bool:
    """`compare_reports`, printed: ``MISMATCH [what ]vs PATH ...`` on stderr (False) or ``[what ]matches PATH ...``
    with the largest difference (True)."""
    bad = compare_reports(report, reference, tol)
    prefix = f"{what} " if what else ""
    if bad:
        worst = max((abs(float(a) - float(b)) for _, a, b in bad if a is not None and b is not None), default=None)
        print(f"MISMATCH {prefix}vs {reference_path} (tolerance {tol:g}): "
              + ", ".join(f"{k} {a} vs {b}" for k, a, b in bad)
              + (f"; largest difference {worst:.2e}" if worst is not None else ""), file=sys.stderr)
        return False
    diffs = [abs(float(report["metrics"][k]) - float(reference["metrics"][k])) for k, _ in TABLE_KEYS
             if report["metrics"].get(k) is not None and reference["metrics"].get(k) is not None]
    print(f"{prefix}matches {reference_path}: every metric within {tol:g} (largest difference "
          f"{max(diffs, default=0.0):.2e})")
    return True


def compare_reports(report: dict, reference: dict, tol: float = 1e-3) -> list:
    """Metrics of ``report`` that differ from ``reference`` by more than ``tol`` (absolute), as
    ``[(name, value, reference_value)]``; empty when they agree (e.g. a `.tflite` against its Keras weights)."""
    out = []
    for k, _ in TABLE_KEYS:
        a, b = report["metrics"].get(k), reference["metrics"].get(k)
        if a is None or b is None or not abs(float(a) - float(b)) <= tol:
            out.append((k, a, b))
    if report.get("standard_metrics") and reference.get("standard_metrics"):  # both scored the protocol
        for k in STANDARD_KEYS:
            a, b = report["standard_metrics"].get(k), reference["standard_metrics"].get(k)
            if a is None or b is None or not abs(float(a) - float(b)) <= tol:
                out.append((f"standard {k}", a, b))
    return out


# ------------------------------------------------------------------------------------------------------ CLI


def evaluate_predict_fn(predict, dataset, max_images: int = 0, on_image=None, standard=None):
    """Runs `predict([1,H,W,3]) -> [1,H,W,1]` over an eval dataset (any batch size, split into single
    images); returns (MAI metrics dict, (rgb, gt, pred) of the first image or None). `on_image(i, path, pred)`
    is called for every image (e.g. to save predictions); `standard` (a `metrics.StandardMetrics`) also gets
    every (pred, gt)."""

    metric = MAIMetrics()
    sample, count = None, 0
    for batch in dataset:
        images, depths = batch["image"], batch["depth"]
        for i in range(int(images.shape[0])):
            pred = predict(images[i:i + 1])
            pred = pred.numpy() if hasattr(pred, "numpy") else np.asarray(pred)
            metric.update_state(pred, depths[i:i + 1])
            if standard is not None:
                standard.update(pred, depths[i].numpy())
            if sample is None:
                sample = (images[i].numpy(), depths[i].numpy(), pred[0])
            if on_image is not None:
                on_image(count, batch["rgb_path"][i].numpy().decode(), pred[0])
            count += 1
            if max_images and count >= max_images:
                break
        if max_images and count >= max_images:
            break
    if count == 0:
        raise ValueError("the evaluation data set is empty")
    result = {k: float(np.asarray(v)) for k, v in metric.result().items()}
    return result, sample
