"""`predict` end to end against the exported network alone, side by side (frames/s and their ratio).

    python export/benchmark_predict.py [--tflite artifacts/litedepth_fp32.tflite] [--frames 48] [--threads 1]
                                       [--variant default= --variant depth_only=--nocolor] [--repeats 3]
                                       [--out artifacts/benchmark_predict.json]

In one run:
* a folder of --frames photo-like 480x640 RGB PNGs (smooth gradients, stripes and sensor-like noise, so each PNG
  is ~0.7 MB and decodes like a camera frame) is generated under --work_dir;
* the network alone: the LiteRT interpreter with --threads threads on one fixed frame (`TFLiteModel.predict`:
  set input, invoke, read output), mean over --runs calls after a warm-up, measured before and after the predict
  runs (the mean of both is the reference);
* predict end to end: `python -m litedepth_tf.predict --tflite M --input FOLDER --out OUT --threads T [args]`
  as a subprocess for every --variant (`name=extra args`), --repeats times; the frames/s is the one predict
  prints (its whole run over the folder: reading, the network, colour maps, every PNG written; interpreter
  start-up and imports excluded), the subprocess wall time is recorded too.
The ratio end-to-end / network-alone is printed per variant (target >= 0.25 on the 2-core workplace machine) and
everything goes to --out (JSON, atomically), with the CPU and its load average (the numbers depend on both).
Without --tflite a freshly initialised student is exported to fp32 in --work_dir (latency does not care about
the weights).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags, logging
from PIL import Image

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.tflite.benchmark import machine_info
from litedepth_tf.tflite.convert import build_deploy_from_weights, export_tflite
from litedepth_tf.tflite.runtime import TFLiteModel

FLAGS = flags.FLAGS
flags.DEFINE_string("tflite", None, "The .tflite model; none = a random student exported to fp32 in --work_dir.")
flags.DEFINE_integer("frames", 48, "Number of 480x640 PNG frames in the input folder.")
flags.DEFINE_integer("threads", 1, "Interpreter threads, for the network alone and for predict (--threads).")
flags.DEFINE_integer("runs", 200, "Network alone: timed calls (each time it is measured).")
flags.DEFINE_integer("repeats", 3, "predict runs per variant (the median frames/s is reported).")
flags.DEFINE_multi_string("variant", ["default=", "depth_only=--nocolor"],
                          "predict variants: NAME=extra predict arguments (space separated; may be empty).")
flags.DEFINE_string("work_dir", None, "Folder for the frames, the model and predict's outputs (default: a temp "
                    "folder, removed afterwards).")
flags.DEFINE_string("out", "artifacts/benchmark_predict.json", "Where to write the JSON results.")

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


def parse_variants(specs):
    out = []
    for spec in specs:
        name, sep, args = spec.partition("=")
        if not sep or not name:
            raise cli.InputError(f"--variant {spec!r}: expected NAME=extra args (e.g. depth_only=--nocolor)")
        out.append((name, args.split()))
    return out


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    variants = parse_variants(FLAGS.variant)
    if FLAGS.frames < 1:
        raise cli.InputError(f"--frames must be >= 1, got {FLAGS.frames}")
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="litedepth_bench_predict_") as tmp:
        work = FLAGS.work_dir or tmp
        tflite = FLAGS.tflite
        if tflite is None:
            tflite = export_tflite(build_deploy_from_weights(None), os.path.join(work, "student_fp32.tflite"))
        elif not os.path.isfile(tflite):
            raise cli.InputError(f"--tflite {tflite!r} does not exist")
        folder = os.path.join(work, "frames")
        paths = make_frames(folder, FLAGS.frames)
        frame = np.asarray(Image.open(paths[0]))
        mb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} frames 480x640 in {folder} ({mb:.2f} MB each); model {tflite}", flush=True)
        net_before = network_alone(tflite, FLAGS.threads, FLAGS.runs, frame)
        results = []
        for name, extra in variants:
            runs = []
            for k in range(FLAGS.repeats):
                out = os.path.join(work, f"out_{name}_{k}")
                runs.append(run_predict(tflite, folder, out, FLAGS.threads, extra))
                print(f"  predict [{name}] run {k + 1}: {runs[-1]['frames_per_s']:.2f} frames/s "
                      f"({runs[-1]['files_written']} files, {runs[-1]['wall_s']:.1f} s with start-up)", flush=True)
            results.append({"variant": name, "args": extra, "runs": runs,
                            "frames_per_s": float(np.median([r["frames_per_s"] for r in runs]))})
        net_after = network_alone(tflite, FLAGS.threads, FLAGS.runs, frame)
    net_ms = (net_before["mean_ms"] + net_after["mean_ms"]) / 2
    net_fps = 1000.0 / net_ms
    print(f"\nnetwork alone ({FLAGS.threads} thread(s)): {net_ms:.2f} ms/frame = {net_fps:.1f} frames/s "
          f"(before {net_before['mean_ms']:.2f} ms, after {net_after['mean_ms']:.2f} ms)")
    print("| variant | predict args | network alone (frames/s) | predict end to end (frames/s) | ratio |")
    print("|---|---|---|---|---|")
    for r in results:
        r["ratio"] = r["frames_per_s"] / net_fps
        print(f"| {r['variant']} | {' '.join(r['args']) or '(none)'} | {net_fps:.1f} | {r['frames_per_s']:.2f} "
              f"| {r['ratio']:.3f}x |")
    try:
        info["loadavg_1m_at_end"] = os.getloadavg()[0]
    except OSError:
        pass
    result = {"machine": info, "frames": FLAGS.frames, "size": "480x640", "threads": FLAGS.threads,
              "tflite": tflite if FLAGS.tflite else "random student, fp32",
              "network_alone": {"before": net_before, "after": net_after, "mean_ms": net_ms, "frames_per_s": net_fps},
              "predict": results, "target_ratio": 0.25}
    atomic_write_json(FLAGS.out, result)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
