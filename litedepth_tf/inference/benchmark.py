"""`predict` end to end against the exported network alone (the library behind ``export/benchmark_predict.py``).

* `make_frames`: a folder of photo-like RGB PNGs (smooth gradients, stripes and sensor-like noise, so that each
  480x640 PNG is ~0.7 MB and decodes like a camera frame);
* `network_alone`: the LiteRT interpreter on one fixed frame (`TFLiteModel.predict`: set input, invoke, read
  output), mean and median over timed calls after a warm-up;
* `run_predict`: ``python -m litedepth_tf.predict`` as a subprocess, and the frames/s it prints (its whole run
  over the folder: reading, the network, colour maps, every file written; start-up and imports excluded);
* `benchmark_predict`: both, for several argument variants, the network timed before and after the predict runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from litedepth_tf.common.cli import InputError
from litedepth_tf.tflite.runtime import TFLiteModel

FPS_LINE = re.compile(r"([0-9.]+) frames/s end to end")


def make_frames(folder, n, height=480, width=640, seed=0):
    """n photo-like RGB PNGs (gradients + stripes + noise; each frame differs) -> their paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(n):
        phase = 2 * np.pi * i / max(n, 1)
        img = np.stack([255 * yy / height, 255 * xx / width,
                        128 + 90 * np.sin(xx / 23.0 + phase) * np.cos(yy / 31.0)], axis=-1)
        img += rng.normal(0, 6, img.shape)
        path = os.path.join(folder, f"frame_{i:04d}.png")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def network_alone(path, threads, runs, frame) -> dict:
    """Mean / median ms of `TFLiteModel.predict` on one frame after 10 warm-up calls."""
    model = TFLiteModel(path, num_threads=threads)
    x = np.asarray(frame, np.float32)[None]
    for _ in range(10):
        model.predict(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.predict(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"mean_ms": float(np.mean(times)), "median_ms": float(np.median(times)), "runs": runs}


def run_predict(tflite, folder, out, threads, extra) -> dict:
    """One ``predict --tflite`` run over `folder` into `out` -> its frames/s, wall time (with start-up) and file
    count; RuntimeError with its stderr if it fails."""
    cmd = [sys.executable, "-m", "litedepth_tf.predict", "--tflite", tflite, "--input", folder, "--out", out,
           "--threads", str(threads), *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0", LITEDEPTH_NO_PROGRESS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    found = FPS_LINE.search(proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"predict failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    files = sum(len(fs) for _, _, fs in os.walk(out))
    return {"frames_per_s": float(found.group(1)), "wall_s": wall, "files_written": files,
            "summary": found.string[: found.end()].splitlines()[-1]}


def parse_variants(specs) -> list:
    """["NAME=extra args", ...] -> [(name, [args])]; InputError for a spec without a name."""
    out = []
    for spec in specs:
        name, sep, args = spec.partition("=")
        if not sep or not name:
            raise InputError(f"--variant {spec!r}: expected NAME=extra args (e.g. depth_only=--nocolor)")
        out.append((name, args.split()))
    return out


def benchmark_predict(tflite, frames, work, variants, threads=1, runs=200, repeats=3, log=print) -> dict:
    """Network alone (before and after) and `repeats` predict runs per variant ([(name, args)]) over the PNGs
    `frames` (paths in one folder), outputs under `work` -> {"network_alone", "predict": [per variant: runs, the
    median frames/s, its ratio to the network's]}."""
    folder = os.path.dirname(frames[0])
    frame = np.asarray(Image.open(frames[0]))
    before = network_alone(tflite, threads, runs, frame)
    results = []
    for name, extra in variants:
        done = []
        for k in range(repeats):
            done.append(run_predict(tflite, folder, os.path.join(work, f"out_{name}_{k}"), threads, extra))
            log(f"  predict [{name}] run {k + 1}: {done[-1]['frames_per_s']:.2f} frames/s "
                f"({done[-1]['files_written']} files, {done[-1]['wall_s']:.1f} s with start-up)")
        results.append({"variant": name, "args": extra, "runs": done,
                        "frames_per_s": float(np.median([r["frames_per_s"] for r in done]))})
    after = network_alone(tflite, threads, runs, frame)
    net_ms = (before["mean_ms"] + after["mean_ms"]) / 2
    for r in results:
        r["ratio"] = r["frames_per_s"] * net_ms / 1000.0
    return {"network_alone": {"before": before, "after": after, "mean_ms": net_ms, "frames_per_s": 1000.0 / net_ms},
            "predict": results}
