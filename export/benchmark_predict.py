"""`predict` end to end against the exported network alone, side by side (frames/s and their ratio; library:
`litedepth_tf.inference.benchmark`).

    python export/benchmark_predict.py [--tflite artifacts/litedepth_fp32.tflite] [--frames 48] [--threads 1]
                                       [--variant default= --variant depth_only=--nocolor] [--repeats 3]
                                       [--out artifacts/benchmark_predict.json]

In one run: a folder of --frames photo-like 480x640 RGB PNGs under --work_dir; the network alone (--threads
interpreter threads on one frame, mean over --runs calls, before and after the predict runs: the reference is the
mean of both); ``python -m litedepth_tf.predict --tflite M --input FOLDER --out OUT --threads T [args]`` for every
--variant (`name=extra args`), --repeats times, with the frames/s predict prints. The ratio end to end / network
alone is printed per variant and everything goes to --out (JSON, atomically), with the CPU and its load average
(the numbers depend on both). Without --tflite a freshly initialised student is exported to fp32 in --work_dir
(latency does not care about the weights).
"""

from __future__ import annotations

import os
import tempfile

from absl import flags, logging

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.inference.benchmark import benchmark_predict, make_frames, parse_variants
from litedepth_tf.tflite.benchmark import machine_info
from litedepth_tf.tflite.export import build_deploy_from_weights, export_tflite


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_string("tflite", None, "The .tflite model; none = a random student exported to fp32 in --work_dir.",
                        **d)
    flags.DEFINE_integer("frames", 48, "Number of 480x640 PNG frames in the input folder.", **d)
    flags.DEFINE_integer("threads", 1, "Interpreter threads, for the network alone and for predict (--threads).",
                         **d)
    flags.DEFINE_integer("runs", 200, "Network alone: timed calls (each time it is measured).", **d)
    flags.DEFINE_integer("repeats", 3, "predict runs per variant (the median frames/s is reported).", **d)
    flags.DEFINE_multi_string("variant", ["default=", "depth_only=--nocolor"], "predict variants: NAME=extra "
                              "predict arguments (space separated; may be empty).", **d)
    flags.DEFINE_string("work_dir", None, "Folder for the frames, the model and predict's outputs (default: a temp "
                        "folder, removed afterwards).", **d)
    flags.DEFINE_string("out", "artifacts/benchmark_predict.json", "Where to write the JSON results.", **d)
    return fv


def main(argv, fv):
    logging.set_verbosity(logging.WARNING)
    variants = parse_variants(fv.variant)
    if fv.frames < 1:
        raise cli.InputError(f"--frames must be >= 1, got {fv.frames}")
    if fv.tflite is not None and not os.path.isfile(fv.tflite):
        raise cli.InputError(f"--tflite {fv.tflite!r} does not exist")
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="litedepth_bench_predict_") as tmp:
        work = fv.work_dir or tmp
        tflite = fv.tflite or export_tflite(build_deploy_from_weights(None), os.path.join(work, "student_fp32.tflite"))
        frames = make_frames(os.path.join(work, "frames"), fv.frames)
        mb = sum(os.path.getsize(p) for p in frames) / len(frames) / 1e6
        print(f"{len(frames)} frames 480x640 in {os.path.dirname(frames[0])} ({mb:.2f} MB each); model {tflite}",
              flush=True)
        res = benchmark_predict(tflite, frames, work, variants, fv.threads, fv.runs, fv.repeats,
                                log=lambda m: print(m, flush=True))
    net = res["network_alone"]
    print(f"\nnetwork alone ({fv.threads} thread(s)): {net['mean_ms']:.2f} ms/frame = {net['frames_per_s']:.1f} "
          f"frames/s (before {net['before']['mean_ms']:.2f} ms, after {net['after']['mean_ms']:.2f} ms)")
    print("| variant | predict args | network alone (frames/s) | predict end to end (frames/s) | ratio |")
    print("|---|---|---|---|---|")
    for r in res["predict"]:
        print(f"| {r['variant']} | {' '.join(r['args']) or '(none)'} | {net['frames_per_s']:.1f} | "
              f"{r['frames_per_s']:.2f} | {r['ratio']:.3f}x |")
    try:
        info["loadavg_1m_at_end"] = os.getloadavg()[0]
    except OSError:
        pass
    atomic_write_json(fv.out, {"machine": info, "frames": fv.frames, "size": "480x640", "threads": fv.threads,
                               "tflite": fv.tflite or "random student, fp32", **res, "target_ratio": 0.25})
    print(f"wrote {fv.out}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
