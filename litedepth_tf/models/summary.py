"""Teacher size per Swin preset next to the student, at one network input size (the library behind
``export/teacher_summary.py``).

Each row: parameters (all weights, the encoder alone), the analytic multiply-accumulate count and the TF-profiler
FLOPs of one forward pass (batch 1; 1 FLOP = 1 multiply or 1 add, so MACs ~= FLOPs / 2). Teachers:
`litedepth_tf.models.teacher.teacher_summary`; the student row uses the same parameter count and profiler, and
`litedepth_tf.models.complexity.count_macs` for its analytic MACs (convs / depthwise / dense only).
"""

from __future__ import annotations

from litedepth_tf.models.complexity import count_macs
from litedepth_tf.models.student import ENCODER_NAME, build_student
from litedepth_tf.models.swin import count_params
from litedepth_tf.models.teacher import TEACHER_PRESETS, measure_flops, teacher_summary


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


def check_presets(presets) -> None:
    """ValueError naming the names in `presets` that are not teacher presets."""
    bad = [p for p in presets if p not in TEACHER_PRESETS]
    if bad:
        raise ValueError(f"unknown {bad}; choose from {list(TEACHER_PRESETS)}")


def summaries(presets, height: int = 128, width: int = 160, flops: bool = True, log=None) -> list:
    """[the student's row, then one per teacher preset (`check_presets`)]; ``log(row)`` after each teacher."""
    rows = [student_summary(height, width, flops)]
    for preset in presets:
        rows.append(teacher_summary(preset, height, width, flops=flops))
        if log is not None:
            log(rows[-1])
    return rows


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
