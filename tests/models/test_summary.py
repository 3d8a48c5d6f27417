"""The size table behind export/teacher_summary.py (litedepth_tf.models.summary): the student's row counts what
the model holds, and the table prints each row."""

import pytest

from litedepth_tf.models.student import ENCODER_NAME, build_student
from litedepth_tf.models.summary import check_presets, format_table, student_summary


def test_student_row_and_table():
    row = student_summary(128, 160, flops=False)
    model = build_student(input_shape=(128, 160, 3))
    assert row["params"] == model.count_params() and row["input"] == [128, 160]
    assert row["encoder_params"] == model.get_layer(ENCODER_NAME).count_params() < row["params"]
    assert 0.01 < row["analytic_gmacs"] < 1.0 and "profiler_gflops" not in row
    teacher = dict(row, preset="micro", params=4 * row["params"], profiler_gflops=2.0)
    table = format_table([dict(row, profiler_gflops=0.1), teacher]).splitlines()
    assert table[0].startswith("model | input | params (M)") and len(table) == 4
    assert table[2].startswith("student (MobileNetV3) | 128x160 |") and table[3].startswith("teacher swin_micro")
    assert table[3].endswith("| 2.000 | 20x")  # FLOPs and the ratio to the student's


def test_unknown_presets_are_named():
    check_presets(["micro", "large"])
    with pytest.raises(ValueError, match=r"unknown \['huge'\]"):
        check_presets(["micro", "huge"])
