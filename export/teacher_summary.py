"""Teacher size per Swin preset next to the student, at the student's input size (128x160 by default).

    python export/teacher_summary.py --out artifacts/teacher_summary.json [--presets micro,tiny,base,large]
                                     [--height 128 --width 160] [--noflops]

For each preset (`litedepth_tf.models.teacher.teacher_summary`): parameters (all weights, encoder alone), the analytic
multiply-accumulate count `analytic_macs` and the TF-profiler FLOPs of one forward pass (batch 1; 1 FLOP = 1
multiply or 1 add, so MACs ~= FLOPs / 2). The student row uses the same parameter count and profiler, and
`litedepth_tf.models.complexity.count_macs` for its analytic MACs (convs / depthwise / dense only). Prints a table and
writes every row to --out (JSON, atomically).
"""

from __future__ import annotations

import sys

from absl import flags, logging

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.models.complexity import count_macs
from litedepth_tf.models.student import ENCODER_NAME, build_student
from litedepth_tf.models.swin import count_params
from litedepth_tf.models.teacher import TEACHER_PRESETS, measure_flops, teacher_summary

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "artifacts/teacher_summary.json", "Where to write the JSON rows.")
flags.DEFINE_list("presets", ["micro", "tiny", "base", "large"], "Teacher presets (litedepth_tf.models.teacher).")
flags.DEFINE_integer("height", 128, "Network input height (the student's 128 for a 480x640 frame).")
flags.DEFINE_integer("width", 160, "Network input width.")
flags.DEFINE_bool("flops", True, "Also count FLOPs with the TF profiler (slower for the large presets).")


def student_summary(height: int, width: int, flops: bool = True) -> dict:
    model = build_student(input_shape=(height, width, 3))
    row = {
        "preset": "student",
        "input": [height, width],
        "params": count_params(model),
        "encoder_params": count_params(model.get_layer(ENCODER_NAME)),
        "analytic_gmacs": count_macs(model) / 1e9,
    }
    if flops:
        row["profiler_gflops"] = measure_flops(model, (height, width, 3)) / 1e9
    return row


def format_table(rows) -> str:
    head = ["model", "input", "params (M)", "encoder (M)", "MACs (G, analytic)", "FLOPs (G, profiler)", "x student"]
    student = next((r for r in rows if r["preset"] == "student"), None)
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        name = "student (MobileNetV3)" if r["preset"] == "student" else f"teacher swin_{r['preset']}"
        gf = r.get("profiler_gflops")
        ratio = ""
        if gf is not None and student and student.get("profiler_gflops"):
            x = gf / student["profiler_gflops"]
            ratio = f"{x:.1f}x" if x < 10 else f"{x:.0f}x"
        macs = r.get("analytic_gmacs")
        lines.append(" | ".join([
            name, "x".join(str(v) for v in r["input"]), f"{r['params'] / 1e6:.3f}",
            f"{r['encoder_params'] / 1e6:.3f}", "" if macs is None else f"{macs:.3f}",
            "" if gf is None else f"{gf:.3f}", ratio]))
    return "\n".join(lines)


def main(argv):
    logging.set_verbosity(logging.ERROR)  # the TF1 profiler's deprecation warnings

    bad = [p for p in FLAGS.presets if p not in TEACHER_PRESETS]
    if bad:
        raise cli.InputError(f"--presets: unknown {bad}; choose from {list(TEACHER_PRESETS)}")
    rows = [student_summary(FLAGS.height, FLAGS.width, FLAGS.flops)]
    for preset in FLAGS.presets:
        rows.append(teacher_summary(preset, FLAGS.height, FLAGS.width, flops=FLAGS.flops))
        print(f"  {preset}: {rows[-1]['params'] / 1e6:.2f} M params", file=sys.stderr, flush=True)
    print(format_table(rows))
    atomic_write_json(FLAGS.out, {"rows": rows, "note": "batch 1; FLOPs = 2 x MACs (multiply + add)"})
    print(f"wrote {FLAGS.out}")
    return 0


if __name__ == "__main__":
    cli.run(main)
