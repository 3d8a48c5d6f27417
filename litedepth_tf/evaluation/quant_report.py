"""fp32 vs fp16 vs int8 from the same weights: accuracy (MAI metrics), drift from fp32, size and latency.

    python export/export_tflite.py --weights runs/demo/best.weights.h5 --data_root data/synthetic \\
        --report_split local_val --report_images 40 --out artifacts/litedepth_fp32.tflite

or from Python: `quant_report(weights, data_root, "local_val", 40, "artifacts")`. It

1. exports `litedepth_{fp32,fp16,int8}.tflite` into `out_dir` from one set of weights (int8: full-integer,
   calibrated on `calib_images` frames of `calib_split` from the evaluation pipeline, `litedepth_tf.tflite.calibration`;
   the final upsampling as `litedepth_tf.models.upsample.BilinearUpsample` unless `upsample="resize"`),
2. runs the three files with the LiteRT interpreter on the SAME `n_images` frames of `split` (one pass, each frame
   decoded once) and computes the MAI metrics of each (`litedepth_tf.evaluation.metrics.MAIMetrics`) and max / mean
   |depth - fp32 depth| over all pixels,
3. measures the file sizes (MB = 1e6 bytes) and the 1-thread latency (`litedepth_tf.tflite.benchmark.measure_latency`,
   median of `runs` invocations),
4. checks the targets (int8 si-RMSE <= fp32 + 0.02, int8 file <= 0.6 MB, int8 1-thread latency < fp32),
   prints a table and writes everything to `json_path` (default `out_dir/quant_report.json`) atomically,
5. writes each file's model card (`litedepth_tf.tflite.model_card`) with its metrics on these frames as the
   evaluation and its GPU delegate verdict (`litedepth_tf.tflite.gpu_check`).

With ``reuse_dir`` (``--report_from``) step 1 copies the three files export_tflite.py wrote there from the same
weights (each checked against its model card, whose parity figures are kept) instead of exporting them again.
"""

from __future__ import annotations

import os
import time

import numpy as np

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.files import atomic_write_bytes, atomic_write_json
from litedepth_tf.common.progress import progress_bar
from litedepth_tf.data.pipeline import list_pairs, make_dataset
from litedepth_tf.evaluation.evaluator import print_comparison
from litedepth_tf.evaluation.metrics import MAIMetrics
from litedepth_tf.models.upsample import apply_upsample, resolve_upsample
from litedepth_tf.tflite import model_card
from litedepth_tf.tflite.benchmark import machine_info, measure_latency
from litedepth_tf.tflite.calibration import representative_images
from litedepth_tf.tflite.export import QUANT_MODES, build_deploy_from_weights, export_tflite, tflite_name
from litedepth_tf.tflite.gpu_check import check_gpu_compatibility
from litedepth_tf.tflite.runtime import TFLiteModel

QUANTS = QUANT_MODES  # the report's rows, in this order
TARGETS = {"int8_si_rmse_over_fp32_max": 0.02, "int8_size_mb_max": 0.6}


def si_rmse_key(metrics: dict) -> str | None:
    """The scale-invariant RMSE entry of a MAI metrics dict, whatever its exact spelling."""
    for k in metrics:
        norm = k.lower().replace("-", "_").replace(" ", "_")
        if norm in ("si_rmse", "sirmse", "si_rmse_log", "silog_rmse"):
            return k
    for k in metrics:
        norm = k.lower()
        if "si" in norm and "rmse" in norm:
            return k
    return None


def report_size(data_root, split: str, n_images: int = 0) -> int:
    """How many images of `split` the report scores (`n_images`, 0 = all); ValueError naming the split when it
    cannot be listed."""
    try:
        total = len(list_pairs(data_root, split))
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"report split {split!r} under {os.fspath(data_root)!r} is unusable: {err}") from err
    return total if not n_images or n_images <= 0 else min(int(n_images), total)


def quant_report(weights, data_root, split: str = "local_val", n_images: int = 0, out_dir: str = "artifacts",
                 calib_split: str = "train", calib_images: int = 64, int8_io: str = "float32", threads: int = 1,
                 runs: int = 50, upsample: str = "auto", json_path: str | None = None, seed: int = 0,
                 merge_normalization: bool = True, progress: bool = True, reuse_dir: str | None = None,
                 final_resize: str = "nearest") -> dict:
    """See the module docstring. Returns the report dict (also written to `json_path`). `reuse_dir`: evaluate the
    three files already exported there from `weights` (export_tflite.py's names, checked against their model
    cards: `model_card.check_export`), copied into `out_dir`, instead of exporting them again."""

    out_dir = os.fspath(out_dir)
    n = report_size(data_root, split, n_images)  # fails before the (slow) exports if the split is unusable
    reused = {}
    if reuse_dir is not None:  # every file checked before anything is written
        for q in QUANTS:
            src = os.path.join(os.fspath(reuse_dir), tflite_name(q, int8_io))
            reused[q] = (src, model_card.check_export(src, q, weights, resolve_upsample(upsample, q, final_resize)))
    rep = representative_images(data_root, calib_split, calib_images, seed)  # reused files: only recorded
    deploy = None if reused else build_deploy_from_weights(weights, merge_normalization, final_resize=final_resize)

    rows, paths, models, parity = {}, {}, {}, {}
    for q in QUANTS:
        t0 = time.perf_counter()
        path = os.path.join(out_dir, tflite_name(q, int8_io))
        if q in reused:
            src, card = reused[q]
            if os.path.abspath(src) != os.path.abspath(path):
                with open(src, "rb") as fh:
                    atomic_write_bytes(path, fh.read())
            parity[q] = card.get("parity")
        else:
            path = export_tflite(apply_upsample(deploy, q, upsample), path, q, rep if q == "int8" else None,
                                 int8_io=int8_io if q == "int8" else "float32")
        paths[q], models[q] = path, TFLiteModel(path, num_threads=threads)
        rows[q] = {"path": path, "bytes": os.path.getsize(path), "size_mb": os.path.getsize(path) / 1e6,
                   "upsample": resolve_upsample(upsample, q, final_resize), "export_s": time.perf_counter() - t0,
                   "reused_from": reused[q][0] if q in reused else None,
                   "io": f"{models[q].input_dtype.name} -> {np.dtype(models[q].output['dtype']).name}"}

    metrics = {q: MAIMetrics() for q in QUANTS}
    max_diff = {q: 0.0 for q in QUANTS}
    sum_diff = {q: 0.0 for q in QUANTS}
    pixels, count = 0, 0
    bar = progress_bar(total=n, desc="quant report", unit="image", disable=None if progress else True)
    for batch in make_dataset(data_root, split, 1, training=False):
        x, gt = batch["image"].numpy(), batch["depth"].numpy()
        preds = {q: models[q].predict(x) for q in QUANTS}
        for q in QUANTS:
            metrics[q].update_state(preds[q], gt)
            d = np.abs(preds[q].astype(np.float64) - preds["fp32"])
            max_diff[q] = max(max_diff[q], float(d.max()))
            sum_diff[q] += float(d.sum())
        pixels += preds["fp32"].size
        count += 1
        bar.update(1)
        if count >= n:
            break
    bar.close()

    for q in QUANTS:
        result = {k: float(np.asarray(v)) for k, v in metrics[q].result().items()}
        lat = measure_latency(paths[q], threads, runs=runs)
        rows[q].update(metrics=result, max_abs_diff_vs_fp32_m=max_diff[q], mean_abs_diff_vs_fp32_m=sum_diff[q] / pixels,
                       **{f"latency_{threads}t_median_ms": lat.median_ms, f"latency_{threads}t_p90_ms": lat.p90_ms})
    si = si_rmse_key(rows["fp32"]["metrics"])
    lat_key = f"latency_{threads}t_median_ms"
    checks = {
        "int8_size_mb": {"value": rows["int8"]["size_mb"], "max": TARGETS["int8_size_mb_max"],
                         "ok": rows["int8"]["size_mb"] <= TARGETS["int8_size_mb_max"]},
        f"int8_latency_{threads}t_below_fp32": {"int8_ms": rows["int8"][lat_key], "fp32_ms": rows["fp32"][lat_key],
                                                "ok": rows["int8"][lat_key] < rows["fp32"][lat_key]},
    }
    if si is not None:
        delta = rows["int8"]["metrics"][si] - rows["fp32"]["metrics"][si]
        checks["int8_si_rmse_over_fp32"] = {"value": delta, "max": TARGETS["int8_si_rmse_over_fp32_max"],
                                            "ok": delta <= TARGETS["int8_si_rmse_over_fp32_max"], "metric": si}
    report = {
        "weights": None if weights is None else os.fspath(weights), "data_root": os.fspath(data_root),
        "split": split, "n_images": count, "calibration": {"split": calib_split, "images": len(rep), "seed": seed,
                                                           "stems": rep.stems},
        "int8_io": int8_io, "threads": threads, "runs": runs, "machine": machine_info(), "rows": rows,
        "checks": checks, "all_ok": all(c["ok"] for c in checks.values()),
    }
    json_path = json_path or os.path.join(out_dir, "quant_report.json")
    gpus = {q: check_gpu_compatibility(paths[q]).summary() for q in QUANTS}
    for q in QUANTS:
        rows[q]["gpu_delegate_compatible"] = gpus[q]["compatible"]
    atomic_write_json(json_path, report)
    for q in QUANTS:
        gpu = gpus[q]
        evaluation = {"report": json_path, "model": paths[q], "kind": "tflite", "data_root": os.fspath(data_root),
                      "split": split, "n_images": count, "metrics": rows[q]["metrics"], "baseline_metrics": None,
                      "max_abs_diff_vs_fp32_m": max_diff[q], "mean_abs_diff_vs_fp32_m": sum_diff[q] / pixels}
        card = model_card.build_card(paths[q], models[q].input, models[q].output, q, weights=weights,
                                     upsample=rows[q]["upsample"], merge_normalization=merge_normalization,
                                     gpu=gpu, evaluation=evaluation, parity=parity.get(q),
                                     created_by="litedepth_tf.evaluation.quant_report")
        model_card.write_card(paths[q], card)
    return report


def format_report(report: dict) -> str:
    """Markdown table: one row per quantisation, metric columns in the metrics' own order, then the checks."""
    rows = report["rows"]
    names = list(rows["fp32"]["metrics"])
    lat_key = f"latency_{report['threads']}t_median_ms"
    head = ["quant", "io", "size (MB)", f"{report['threads']}-thread median (ms)", "max abs diff vs fp32 (m)",
            "mean abs diff vs fp32 (m)"] + names
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for q in [q for q in QUANTS if q in rows] + [q for q in rows if q not in QUANTS]:
        r = rows[q]
        cells = [q, r["io"], f"{r['size_mb']:.3f}", f"{r[lat_key]:.2f}", f"{r['max_abs_diff_vs_fp32_m']:.4f}",
                 f"{r['mean_abs_diff_vs_fp32_m']:.4f}"] + [f"{r['metrics'][k]:.4f}" for k in names]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\n{report['n_images']} images of {report['data_root']}/{report['split']}; int8 calibrated on "
                 f"{report['calibration']['images']} images of {report['calibration']['split']}")
    for name, c in report["checks"].items():
        detail = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in c.items() if k != "ok")
        lines.append(f"{'PASS' if c['ok'] else 'FAIL'} {name}: {detail}")
    return "\n".join(lines)


def check_same_images(reference: dict, reference_path: str, data_root: str, split: str, n_images: int) -> None:
    """``--compare_to`` must be a report of the same data root, split and number of images: InputError naming
    `reference_path` otherwise (checked before the report runs, on the split's listing, and again on the images
    it scored)."""
    same = (os.path.abspath(str(reference.get("data_root", ""))) == os.path.abspath(data_root)
            and reference.get("split") == split and reference.get("n_images") == n_images)
    if not same:
        raise InputError(f"--compare_to={reference_path}: scored {reference.get('n_images')} images of "
                         f"{reference.get('data_root')}/{reference.get('split')}, the report {n_images} of "
                         f"{data_root}/{split}: not the same images")


def compare_fp32(report: dict, reference: dict, reference_path: str, tol: float = 1e-3) -> bool:
    """The report's fp32 metrics against an `evaluate --out` report of the Keras weights on the same images
    (printed; False unless every metric is within `tol`)."""
    check_same_images(reference, reference_path, report["data_root"], report["split"], report["n_images"])
    return print_comparison({"metrics": report["rows"]["fp32"]["metrics"]}, reference, reference_path, tol,
                            what="fp32")
