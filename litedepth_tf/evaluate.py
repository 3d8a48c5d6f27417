"""Evaluate a LiteDepth model (Keras `.weights.h5` or `.tflite`) on an MAI-layout split with the MAI 2022 metrics.

    python -m litedepth_tf.evaluate --weights runs/demo/best.weights.h5 --data_root data/synthetic \\
        --split local_val [--model student] [--max_images N] [--out eval.json] [--nobaseline] \\
        [--baseline_split train] [--save_predictions DIR]
    python -m litedepth_tf.evaluate --tflite model.tflite --data_root data/synthetic --split local_val

Exactly one of ``--weights`` / ``--tflite``. Data: ``ROOT/<split>/{rgb,depth}/*.png`` (RGB 640x480, depth uint16
millimetres, 0 = invalid). Keras weights are loaded into the ``--model`` preset (`litedepth_tf.registry`) and run
through the deploy view (`model.build_deploy_model`, normalisation merged into the first conv), the same
[1,480,640,3] -> [1,480,640,1] graph that is exported; a `.tflite` file runs in the LiteRT interpreter
(`tflite_io.TFLiteModel`, signature checked). Metrics: `litedepth_tf.metrics` (per image, then the mean).

Prints a table with the model and a constant-depth baseline (every pixel = the median GT depth of
``--baseline_split``, default train; if that split is missing, the evaluated split's own GT median, which is
said in the table and the JSON), and the mean host latency per image (NOT the challenge's Raspberry Pi runtime).
``--out`` writes the JSON report atomically. ``--save_predictions DIR`` writes uint16 millimetre PNGs (MAI format).

Library: `evaluate_model(path_or_model, data_root, split, max_images, model_name)` -> the same report dict.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

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


def load_predict_fn(path_or_model, model_name: str = "student", num_threads: int | None = None):
    """(predict `[1,480,640,3] raw RGB -> [1,480,640,1] metres`, description dict) for a `.tflite` path, a
    `.weights.h5` path (loaded into preset `model_name`), a Keras model (train view with a dict output -> deploy
    view; otherwise used as is) or a callable."""
    import keras
    import tensorflow as tf

    from litedepth_tf.model import build_deploy_model, can_merge_normalization

    if isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        if path.endswith(".tflite"):
            from litedepth_tf.tflite_io import TFLiteModel

            tfl = TFLiteModel(path, num_threads=num_threads)
            return tfl.predict, {"model": path, "kind": "tflite", "io": f"{tfl.input_dtype.name}"}
        if not path.endswith(".h5"):
            raise ValueError(f"{path!r}: expected a .tflite model or Keras .weights.h5 weights")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file not found: {path!r}")
        from litedepth_tf.registry import get_builder

        model = get_builder(model_name)(weights=path)
        deploy = build_deploy_model(model, merge_normalization=can_merge_normalization(model))
        desc = {"model": path, "kind": "keras", "model_name": model_name}
    elif isinstance(path_or_model, keras.Model):
        model = path_or_model
        deploy = (build_deploy_model(model, merge_normalization=can_merge_normalization(model))
                  if isinstance(model.output, dict) else model)
        desc = {"model": f"<keras.Model {model.name}>", "kind": "keras"}
    elif callable(path_or_model):
        return path_or_model, {"model": repr(path_or_model), "kind": "callable"}
    else:
        raise TypeError(f"cannot evaluate {type(path_or_model).__name__}: pass a .tflite / .weights.h5 path, a "
                        "keras.Model or a predict function")
    fn = tf.function(lambda x: deploy(x, training=False), reduce_retracing=True)
    return fn, desc


def baseline_median(data_root, split: str, baseline_split: str = "train", progress: bool = True):
    """(median depth in metres, source note): the median GT depth of `baseline_split`, or of `split` if that
    split is missing. Pixels beyond `constants.MAX_DEPTH` are left out, as the input pipeline does."""
    from litedepth_tf.constants import MAX_DEPTH
    from litedepth_tf.metrics import median_train_depth

    if baseline_split and os.path.isdir(os.path.join(os.fspath(data_root), baseline_split, "depth")):
        return median_train_depth(data_root, baseline_split, max_depth=MAX_DEPTH, progress=progress), \
            f"median GT depth of split {baseline_split!r}"
    return median_train_depth(data_root, split, max_depth=MAX_DEPTH, progress=progress), \
        f"median GT depth of the evaluated split {split!r} (split {baseline_split!r} is missing)"


def _save_png(folder, rgb_path, pred):
    from PIL import Image

    mm = np.clip(np.round(np.asarray(pred, np.float64)[..., 0] * 1000.0), 0, 65535).astype(np.uint16)
    name = os.path.splitext(os.path.basename(rgb_path))[0] + ".png"
    from litedepth_tf.fsutil import atomic_path

    with atomic_path(os.path.join(folder, name)) as tmp:  # a kill mid-write never leaves a truncated PNG
        Image.fromarray(mm).save(tmp, format="PNG")


def evaluate_model(path_or_model, data_root, split: str = "local_val", max_images: int = 0,
                   model_name: str = "student", baseline: bool = True, baseline_split: str = "train",
                   save_predictions: str | None = None, num_threads: int | None = None,
                   progress: bool = True) -> dict:
    """MAI metrics of a model on ``data_root/split`` (first `max_images` images; 0 = all).

    Returns ``{"metrics", "baseline" (None if `baseline` is False), "model", "kind", "n_images" (run),
    "n_scored" / "n_skipped" (images with / without a valid GT pixel), "bad_files" (pairs left out because a
    file is unreadable, corrupt, of the wrong size / mode or has no valid depth pixel; each named in a warning),
    "split", "data_root", "latency_ms_mean", "first_call_ms"}``; "metrics" has `metrics.METRIC_KEYS`."""
    import tensorflow as tf

    from litedepth_tf.input_pipeline import BadSampleCounter, bad_sample_error, list_pairs, make_dataset
    from litedepth_tf.metrics import VALID_EPS_MM, image_metrics, mean_metrics
    from litedepth_tf.progress import progress_bar
    from litedepth_tf.trainer import evaluate_predict_fn

    check_data_root(data_root, split)
    total = len(list_pairs(data_root, split, check=False))
    n_target = total if not max_images or max_images <= 0 else min(int(max_images), total)
    median, note = baseline_median(data_root, split, baseline_split, progress) if baseline else (None, None)
    predict, desc = load_predict_fn(path_or_model, model_name, num_threads)
    bad_files = BadSampleCounter()  # unreadable / corrupt / all-invalid pairs: skipped, named in warnings
    dataset = make_dataset(data_root, split, 1, training=False, bad_sample_counter=bad_files)

    times, skipped, base_rows = [], [0], []

    def timed(x):
        t0 = time.perf_counter()
        y = predict(x)
        y = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
        times.append(time.perf_counter() - t0)
        return y

    def batches():  # counts images without a valid GT pixel and scores the baseline on the same images
        seen = 0
        for batch in dataset:
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
    bar = progress_bar(total=n_target, desc=f"evaluate {split}", unit="image", disable=None if progress else True)

    def on_image(i, rgb_path, pred):
        if save_predictions:
            _save_png(save_predictions, rgb_path, pred)
        bar.update(1)

    try:
        metrics, _ = evaluate_predict_fn(timed, batches(), max_images=n_target, on_image=on_image)
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
        "split": split,
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
    return report


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
    lines.append(f"mean latency: {report['latency_ms_mean']:.1f} ms / image on this host "
                 f"(first call {report['first_call_ms']:.0f} ms; {report['kind']})")
    return "\n".join(lines)


def compare_reports(report: dict, reference: dict, tol: float = 1e-3) -> list:
    """Metrics of ``report`` that differ from ``reference`` by more than ``tol`` (absolute), as
    ``[(name, value, reference_value)]``; empty when they agree (e.g. a `.tflite` against its Keras weights)."""
    out = []
    for k, _ in TABLE_KEYS:
        a, b = report["metrics"].get(k), reference["metrics"].get(k)
        if a is None or b is None or not abs(float(a) - float(b)) <= tol:
            out.append((k, a, b))
    return out


# ------------------------------------------------------------------------------------------------------ CLI


def define_flags(fv=None):
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("weights", None, "Keras weights (.weights.h5) of --model. Exactly one of --weights/--tflite.",
                        **d)
    flags.DEFINE_string("tflite", None, "A .tflite deploy model [1,480,640,3] -> [1,480,640,1].", **d)
    flags.DEFINE_string("model", "student", "Model preset (litedepth_tf.registry.MODELS) for --weights.", **d)
    flags.DEFINE_string("data_root", None, f"Data root: {LAYOUT}.", **d)
    flags.DEFINE_string("split", "local_val", "Split folder under --data_root to evaluate.", **d)
    flags.DEFINE_integer("max_images", 0, "Evaluate the first N images (0 = all).", **d)
    flags.DEFINE_string("out", None, "Write the JSON report here (atomically).", **d)
    flags.DEFINE_bool("baseline", True, "Also score the constant median-depth baseline.", **d)
    flags.DEFINE_string("baseline_split", "train", "Split whose median GT depth is the baseline's constant.", **d)
    flags.DEFINE_string("save_predictions", None, "Write predictions as uint16 millimetre PNGs into this folder.", **d)
    flags.DEFINE_integer("threads", None, "TFLite interpreter threads (default: the interpreter's).", **d)
    flags.DEFINE_string("compare_to", None, "A JSON report of this command (e.g. the Keras model's): exit 1 unless "
                        "every metric is within --compare_tol of it.", **d)
    flags.DEFINE_float("compare_tol", 1e-3, "Absolute tolerance per metric for --compare_to.", **d)
    return fv


def main(argv):
    from absl import app, flags

    from litedepth_tf.fsutil import atomic_write_json

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    fv = flags.FLAGS
    given = [f"--{n}" for n in ("weights", "tflite") if fv[n].value]
    if len(given) != 1:
        raise app.UsageError("exactly one of --weights or --tflite is required"
                             + (" (got both)" if given else " (got neither)"))
    if not fv.data_root:
        raise app.UsageError(f"--data_root is required ({LAYOUT})")
    from litedepth_tf.fsutil import NotWritableError, check_writable

    try:  # output folders first: an unwritable one is an error now, not after the whole evaluation
        if fv.save_predictions:
            check_writable(fv.save_predictions, what="--save_predictions folder")
        if fv.out:
            check_writable(os.path.dirname(os.path.abspath(fv.out)), what="--out folder")
    except NotWritableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        report = evaluate_model(fv.weights or fv.tflite, fv.data_root, fv.split, fv.max_images, fv.model,
                                baseline=fv.baseline, baseline_split=fv.baseline_split,
                                save_predictions=fv.save_predictions, num_threads=fv.threads)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    if fv.out:
        atomic_write_json(fv.out, report)
        print(f"wrote {fv.out}")
    if fv.compare_to:
        import json

        try:
            with open(fv.compare_to, encoding="utf-8") as fh:
                reference = json.load(fh)
            reference["metrics"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"error: --compare_to={fv.compare_to}: not a readable evaluation report ({err})", file=sys.stderr)
            return 2
        bad = compare_reports(report, reference, fv.compare_tol)
        worst = max((abs(float(a) - float(b)) for _, a, b in bad if a is not None and b is not None), default=None)
        diffs = [abs(float(report["metrics"][k]) - float(reference["metrics"][k])) for k, _ in TABLE_KEYS
                 if report["metrics"].get(k) is not None and reference["metrics"].get(k) is not None]
        if bad:
            print(f"MISMATCH vs {fv.compare_to} (tolerance {fv.compare_tol:g}): "
                  + ", ".join(f"{k} {a} vs {b}" for k, a, b in bad)
                  + (f"; largest difference {worst:.2e}" if worst is not None else ""), file=sys.stderr)
            return 1
        print(f"matches {fv.compare_to}: every metric within {fv.compare_tol:g} (largest difference "
              f"{max(diffs, default=0.0):.2e})")
    return 0


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
