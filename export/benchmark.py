"""Latency / size / complexity of the LiteDepth student next to a FastDepth-architecture reference (library:
`litedepth_tf.tflite.benchmark.benchmark_student`).

    python export/benchmark.py --out artifacts/benchmark.json [--weights runs/demo/best.weights.h5] [--runs 50]

In ONE run: exports the student (fp32 and fp16) and FastDepth (MobileNetV1 + NNConv5, fp32, at 480x640 and at
its native 224x224) through the same SavedModel -> TFLite route, times each with the LiteRT interpreter (1 and 2
threads, warm-up then median and p90 of --runs invocations), counts parameters and MACs, prints a table and the
student/FastDepth latency ratio, then the student's rows in the units of the paper's Table 2 (average and STD in
ms, next to the paper's phone rows; docs/deployment.md), and writes everything to --out (JSON, atomically), with
the CPU and the load average (the numbers depend on both). With --data_root the student is also timed as
full-integer int8 (calibrated on --calib_images frames of --calib_split). With --student_from DIR the student's
files that export/export_tflite.py wrote there are timed as they are (the `make demo` route).
"""

from __future__ import annotations

from absl import flags, logging

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.tflite.benchmark import benchmark_student, exported_student, format_table, format_table2
from litedepth_tf.tflite.calibration import representative_images


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_string("out", "artifacts/benchmark.json", "Where to write the JSON results.", **d)
    flags.DEFINE_string("weights", None, "Student weights (.weights.h5); none = random init (latency does not "
                        "care).", **d)
    flags.DEFINE_integer("runs", 50, "Timed runs per model and thread count (>= 50 for the reported numbers).", **d)
    flags.DEFINE_list("threads", ["1", "2"], "Interpreter thread counts.", **d)
    flags.DEFINE_string("tflite_dir", "artifacts/benchmark", "Where the benchmarked .tflite files are written.", **d)
    flags.DEFINE_string("data_root", None, "Also benchmark the int8 student, calibrated on this data set.", **d)
    flags.DEFINE_string("calib_split", "train", "int8: split to draw calibration images from.", **d)
    flags.DEFINE_integer("calib_images", 64, "int8: number of calibration images.", **d)
    flags.DEFINE_string("student_from", None, "Time the student's litedepth_{fp32,fp16,int8}.tflite that "
                        "export/export_tflite.py wrote into this folder from --weights (checked against their "
                        "model cards) instead of exporting them again.", **d)
    return fv


def main(argv, fv):
    logging.set_verbosity(logging.WARNING)
    threads = tuple(int(t) for t in fv.threads)
    representative, exported = None, None
    if fv.student_from:  # every file checked before the (slow) timing starts
        try:
            quants = ("fp32", "fp16", "int8") if fv.data_root else ("fp32", "fp16")
            exported = exported_student(fv.student_from, fv.weights, quants)
        except ValueError as err:
            raise cli.InputError(str(err)) from None
    elif fv.data_root:  # calibration images are only needed to export the int8 file here
        representative = representative_images(fv.data_root, fv.calib_split, fv.calib_images)
    result = benchmark_student(fv.weights, fv.tflite_dir, threads, fv.runs, representative, int8=bool(fv.data_root),
                               exported=exported, log=lambda m: print(m, flush=True))
    print(format_table(result["rows"], threads))
    print("\nIn the units of the paper's Table 2 (average / STD over the timed runs, ms; phones: docs/deployment.md):")
    print(format_table2(result["rows"], threads))
    for t, ratio in result["student_over_fastdepth_latency"].items():
        print(f"student / FastDepth latency at 480x640, {t}: {ratio:.3f}x")
    atomic_write_json(fv.out, result)
    print(f"wrote {fv.out}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
