"""Latency, size and complexity of exported depth models (library behind `export/benchmark.py`): `benchmark_model`
per model and `benchmark_student`, the student (fp32, fp16, int8) next to a FastDepth-architecture reference."""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time

import numpy as np

from litedepth_tf.models.complexity import count_macs
from litedepth_tf.models.fastdepth import build_fastdepth
from litedepth_tf.models.upsample import apply_upsample, resolve_upsample
from litedepth_tf.tflite.export import build_deploy_from_weights, export_tflite, tflite_name
from litedepth_tf.tflite.model_card import check_export
from litedepth_tf.tflite.runtime import TFLiteModel


@dataclasses.dataclass
class Latency:
    threads: int
    median_ms: float
    p90_ms: float
    runs: int
    mean_ms: float = float("nan")  # the paper's Table 2 reports average and STD (ms), as `benchmark_model` does
    std_ms: float = float("nan")


# The LiteDepth paper's Table 2 (AI Benchmark, 480x640 float32 input and output): (SoC, device, average ms, STD ms).
PAPER_TABLE2 = (("Kirin 980", "CPU", 6.85, 0.77), ("Kirin 980", "GPU delegate", 9.84, 0.66),
                ("Snapdragon 7 Gen 1", "CPU", 6.16, 1.71), ("Snapdragon 7 Gen 1", "GPU delegate", 7.17, 1.00))


def measure_latency(path: str, threads: int, runs: int = 50, warmup: int = 5, seed: int = 0) -> Latency:
    """Median, p90, mean and STD of `runs` timed `invoke()` calls after `warmup` untimed ones (one fixed random
    input)."""
    model = TFLiteModel(path, num_threads=threads, check_signature=False)
    shape = model.input_shape
    x = np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)
    if model.input_dtype != np.float32:
        x = x.astype(model.input_dtype)
    model.interpreter.set_tensor(model.input["index"], x)
    for _ in range(warmup):
        model.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return Latency(threads, float(np.median(times)), float(np.percentile(times, 90)), runs, float(np.mean(times)),
                   float(np.std(times)))


def benchmark_model(name, keras_model, out_dir, quant="fp32", threads=(1, 2), runs=50, representative=None,
                    tflite_path=None):
    """Exports `keras_model` (or times `tflite_path`, a file already exported from it), then returns a dict row:
    params, MACs, size, latency per thread count."""
    if tflite_path is None:
        path = os.path.join(out_dir, f"{name}_{quant}.tflite")
        export_tflite(keras_model, path, quant=quant, representative_images=representative)
    else:
        path = os.fspath(tflite_path)
    row = {
        "model": name,
        "quant": quant,
        "input": "x".join(str(d) for d in keras_model.input.shape[1:3]),
        "params": int(keras_model.count_params()),
        "macs": count_macs(keras_model),
        "tflite_bytes": os.path.getsize(path),
        "tflite_path": path,
    }
    for t in threads:
        lat = measure_latency(path, t, runs=runs)
        row[f"latency_{t}t_median_ms"] = lat.median_ms
        row[f"latency_{t}t_p90_ms"] = lat.p90_ms
        row[f"latency_{t}t_mean_ms"] = lat.mean_ms
        row[f"latency_{t}t_std_ms"] = lat.std_ms
    return row


def exported_student(folder, weights, quants) -> dict:
    """{quant: path} of the student's files that export_tflite.py wrote into `folder` from `weights`, each checked
    against its model card (ValueError naming the file), for `benchmark_student` to time as they are."""
    out = {}
    for quant in quants:
        out[quant] = os.path.join(folder, tflite_name(quant))
        check_export(out[quant], quant, weights, resolve_upsample("auto", quant))
    return out


def benchmark_student(weights=None, out_dir="artifacts/benchmark", threads=(1, 2), runs=50, representative=None,
                      int8=False, exported=None, log=print) -> dict:
    """The student's deploy model from `weights` (None: random init) at fp32 and fp16 (and int8 with `int8`,
    calibrated on `representative`) next to FastDepth (MobileNetV1 + NNConv5, fp32, at 480x640 and at its native
    224x224), each exported to `out_dir` through the same SavedModel -> TFLite route (or, for the student, timed
    from `exported`, see `exported_student`) and timed with `threads` interpreter threads -> {"machine", "runs",
    "rows", "student_over_fastdepth_latency"}."""
    student = build_deploy_from_weights(weights)
    info = machine_info()
    jobs = [("litedepth_student", lambda: student, "fp32"), ("litedepth_student", lambda: student, "fp16"),
            ("fastdepth", lambda: build_fastdepth((480, 640, 3)), "fp32"),
            ("fastdepth", lambda: build_fastdepth((224, 224, 3)), "fp32")]
    if int8:
        jobs.insert(2, ("litedepth_student", lambda: apply_upsample(student, "int8"), "int8"))
    exported = exported or {}
    rows = []
    for name, build, quant in jobs:
        model = build()
        tag = name + ("_224" if model.input.shape[1] == 224 else "")
        log(f"benchmarking {tag} ({quant}) ...")
        rows.append(benchmark_model(tag, model, out_dir, quant, threads, runs,
                                    representative if quant == "int8" else None,
                                    tflite_path=exported.get(quant) if name == "litedepth_student" else None))
    s32 = next(r for r in rows if r["model"] == "litedepth_student" and r["quant"] == "fp32")
    fd = next(r for r in rows if r["model"] == "fastdepth")
    ratios = {f"{t}t": s32[f"latency_{t}t_median_ms"] / fd[f"latency_{t}t_median_ms"] for t in threads}
    return {"machine": info, "runs": runs, "rows": rows, "student_over_fastdepth_latency": ratios}


def machine_info() -> dict:
    info = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        info["loadavg_1m_at_start"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def format_table(rows, threads=(1, 2)) -> str:
    head = ["model", "quant", "input", "params (M)", "MACs (G)", "tflite (MB)"]
    head += [f"{t}-thread median / p90 (ms)" for t in threads]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["quant"], r["input"], f"{r['params'] / 1e6:.3f}", f"{r['macs'] / 1e9:.3f}",
                 f"{r['tflite_bytes'] / 1e6:.3f}"]
        cells += [f"{r[f'latency_{t}t_median_ms']:.2f} / {r[f'latency_{t}t_p90_ms']:.2f}" for t in threads]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table2(rows, threads=(1, 2), device: str = "host CPU (LiteRT XNNPACK)") -> str:
    """The paper's Table 2 layout (average / STD in ms over the timed runs) for the LiteDepth rows of this host,
    followed by the paper's own rows, so phone numbers from `benchmark_model` (its `avg=` / `std=` in us, / 1000)
    can be written in between (docs/deployment.md)."""
    lines = ["| SoC / machine | device | model | threads | Average/ms | STD/ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        if not r["model"].startswith("litedepth"):
            continue
        for t in threads:
            lines.append(f"| this host | {device} | {r['quant']} | {t} | {r[f'latency_{t}t_mean_ms']:.2f} | "
                         f"{r[f'latency_{t}t_std_ms']:.2f} |")
    for soc, dev, avg, std in PAPER_TABLE2:
        lines.append(f"| {soc} (paper, Table 2) | {dev} | paper model | - | {avg:.2f} | {std:.2f} |")
    return "\n".join(lines)


def default_out_dir() -> str:
    return tempfile.mkdtemp(prefix="litedepth_bench_")
