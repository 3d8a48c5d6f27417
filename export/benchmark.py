"""Latency / size / complexity of the LiteDepth student next to a FastDepth-architecture reference.

    python export/benchmark.py --out artifacts/benchmark.json [--weights runs/demo/best.weights.h5] [--runs 50]

In ONE run: exports the student (fp32 and fp16) and FastDepth (MobileNetV1 + NNConv5, fp32, at 480x640 and at
its native 224x224) through the same SavedModel -> TFLite route, times each with the LiteRT interpreter (1 and 2
threads, warm-up then median and p90 of --runs invocations), counts parameters and MACs, prints a table and the
student/FastDepth latency ratio, then the student's rows in the units of the paper's Table 2 (average and STD in
ms, next to the paper's phone rows; `benchmark_model` on a phone prints the same figures, docs/deployment.md), and
writes everything to --out (JSON, atomically).
Numbers depend on the machine and its load: the JSON records the CPU and the load average.
With --data_root the student is also exported and timed as full-integer int8 (calibrated on --calib_images frames of
--calib_split from the evaluation pipeline; final upsampling as `litedepth_tf.models.upsample.BilinearUpsample`).
With --student_from DIR the student's files that export/export_tflite.py wrote there are timed as they are (the
`make demo` route: the benchmark times the files it ships).
"""

from __future__ import annotations

import json
import os

from absl import flags, logging

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_bytes
from litedepth_tf.evaluation.quant_report import tflite_name
from litedepth_tf.models.fastdepth import build_fastdepth
from litedepth_tf.models.upsample import apply_upsample, resolve_upsample
from litedepth_tf.tflite.benchmark import benchmark_model, format_table, format_table2, machine_info
from litedepth_tf.tflite.calibration import representative_images
from litedepth_tf.tflite.convert import build_deploy_from_weights
from litedepth_tf.tflite.model_card import check_export

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "artifacts/benchmark.json", "Where to write the JSON results.")
flags.DEFINE_string("weights", None, "Student weights (.weights.h5); none = random init (latency does not care).")
flags.DEFINE_integer("runs", 50, "Timed runs per model and thread count (>= 50 for the reported numbers).")
flags.DEFINE_list("threads", ["1", "2"], "Interpreter thread counts.")
flags.DEFINE_string("tflite_dir", "artifacts/benchmark", "Where the benchmarked .tflite files are written.")
flags.DEFINE_string("data_root", None, "Also benchmark the int8 student, calibrated on this data set.")
flags.DEFINE_string("calib_split", "train", "int8: split to draw calibration images from.")
flags.DEFINE_integer("calib_images", 64, "int8: number of calibration images.")
flags.DEFINE_string("student_from", None, "Time the student's litedepth_{fp32,fp16,int8}.tflite that "
                    "export/export_tflite.py wrote into this folder from --weights (checked against their model "
                    "cards) instead of exporting them again.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)

    threads = tuple(int(t) for t in FLAGS.threads)
    student = build_deploy_from_weights(FLAGS.weights)
    info = machine_info()
    jobs = [
        ("litedepth_student", lambda: student, "fp32"),
        ("litedepth_student", lambda: student, "fp16"),
        ("fastdepth", lambda: build_fastdepth((480, 640, 3)), "fp32"),
        ("fastdepth", lambda: build_fastdepth((224, 224, 3)), "fp32"),
    ]
    representative = None
    if FLAGS.data_root:
        if not FLAGS.student_from:  # calibration images are only needed to export the int8 file here
            representative = representative_images(FLAGS.data_root, FLAGS.calib_split, FLAGS.calib_images)
        jobs.insert(2, ("litedepth_student", lambda: apply_upsample(student, "int8"), "int8"))
    exported = {}
    if FLAGS.student_from:  # every file checked before the (slow) timing starts
        try:
            for _, _, quant in (j for j in jobs if j[0] == "litedepth_student"):
                path = os.path.join(FLAGS.student_from, tflite_name(quant))
                check_export(path, quant, FLAGS.weights, resolve_upsample("auto", quant))
                exported[quant] = path
        except ValueError as err:
            raise cli.InputError(str(err)) from None
    rows = []
    for name, build, quant in jobs:
        model = build()
        tag = name + ("_224" if model.input.shape[1] == 224 else "")
        print(f"benchmarking {tag} ({quant}) ...", flush=True)
        rows.append(benchmark_model(tag, model, FLAGS.tflite_dir, quant, threads, FLAGS.runs,
                                    representative if quant == "int8" else None,
                                    tflite_path=exported.get(quant) if name == "litedepth_student" else None))
    print(format_table(rows, threads))
    print("\nIn the units of the paper's Table 2 (average / STD over the timed runs, ms; phones: docs/deployment.md):")
    print(format_table2(rows, threads))
    s32 = next(r for r in rows if r["model"] == "litedepth_student" and r["quant"] == "fp32")
    fd = next(r for r in rows if r["model"] == "fastdepth")
    ratios = {f"{t}t": s32[f"latency_{t}t_median_ms"] / fd[f"latency_{t}t_median_ms"] for t in threads}
    for t, ratio in ratios.items():
        print(f"student / FastDepth latency at 480x640, {t}: {ratio:.3f}x")
    result = {"machine": info, "runs": FLAGS.runs, "rows": rows, "student_over_fastdepth_latency": ratios}
    atomic_write_bytes(FLAGS.out, json.dumps(result, indent=2).encode())
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
