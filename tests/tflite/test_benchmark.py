import json
import os

import keras
import pytest

from litedepth_tf.tflite.benchmark import PAPER_TABLE2, benchmark_model, format_table, format_table2
from litedepth_tf.models.fastdepth import build_fastdepth
from litedepth_tf.models.complexity import count_macs
from tests.helpers import run_command



def test_count_macs_by_hand():
    inputs = keras.Input((8, 10, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)  # 4*5 * 9*3*4 = 2160
    x = keras.layers.DepthwiseConv2D(5, padding="same")(x)  # 4*5 * 25*4 = 2000
    x = keras.layers.Conv2D(2, 1)(x)  # 4*5 * 4*2 = 160
    assert count_macs(keras.Model(inputs, x)) == 2160 + 2000 + 160


def test_fastdepth_matches_published_complexity():
    model = build_fastdepth((224, 224, 3))
    assert model.output.shape == (1, 224, 224, 1)
    assert 3.8e6 < model.count_params() < 4.1e6  # FastDepth paper: 3.93 M (MobileNet-NNConv5)
    assert 0.70e9 < count_macs(model) < 0.78e9  # FastDepth paper: 0.74 GMACs at 224x224


def test_benchmark_row_and_table(tmp_path):
    inputs = keras.Input((480, 640, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    row = benchmark_model("tiny", model, str(tmp_path), "fp32", threads=(1,), runs=3)
    assert row["macs"] == 480 * 640 * 27 and row["params"] == 28
    assert row["tflite_bytes"] == os.path.getsize(row["tflite_path"]) > 0
    assert 0 < row["latency_1t_median_ms"] <= row["latency_1t_p90_ms"]
    table = format_table([row], threads=(1,))
    assert "| tiny | fp32 | 480x640 | 0.000 |" in table
    assert row["latency_1t_mean_ms"] > 0 and row["latency_1t_std_ms"] >= 0  # the paper's Table 2 units
    t2 = format_table2([dict(row, model="litedepth_student")], threads=(1,)).splitlines()
    assert t2[0] == "| SoC / machine | device | model | threads | Average/ms | STD/ms |"
    assert t2[2] == (f"| this host | host CPU (LiteRT XNNPACK) | fp32 | 1 | {row['latency_1t_mean_ms']:.2f} | "
                     f"{row['latency_1t_std_ms']:.2f} |")
    assert t2[3:] == [f"| {soc} (paper, Table 2) | {dev} | paper model | - | {a:.2f} | {sd:.2f} |"
                      for soc, dev, a, sd in PAPER_TABLE2] and len(PAPER_TABLE2) == 4
    assert len(format_table2([row], threads=(1,)).splitlines()) == 2 + 4  # other models are not Table 2 rows


@pytest.mark.slow
def test_benchmark_cli_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_command(["export/benchmark.py", f"--out={out}", "--runs=2", "--threads=1", f"--tflite_dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {r["model"] for r in result["rows"]} == {"litedepth_student", "fastdepth", "fastdepth_224"}
    assert "student / FastDepth latency" in proc.stdout
    assert set(result["student_over_fastdepth_latency"]) == {"1t"}


def test_benchmark_student_from_names_a_file_it_cannot_reuse(tmp_path):
    """--student_from checks every student file against its card before timing anything: one line, exit 2."""
    from litedepth_tf.tflite.export import export_tflite
    from litedepth_tf.tflite.model_card import build_card, write_card
    from litedepth_tf.tflite.runtime import TFLiteModel
    from litedepth_tf.models.student import build_deploy_model
    from tests.helpers import random_student

    a, b = str(tmp_path / "a.weights.h5"), str(tmp_path / "b.weights.h5")
    student = random_student(3)
    student.save_weights(a)
    student.save_weights(b)
    path = export_tflite(build_deploy_model(student), str(tmp_path / "litedepth_fp32.tflite"), "fp32")
    m = TFLiteModel(path)
    write_card(path, build_card(path, m.input, m.output, "fp32", weights=a, upsample="nearest"))
    out = tmp_path / "bench.json"
    base = ["export/benchmark.py", f"--out={out}", "--runs=2", "--threads=1", f"--student_from={tmp_path}"]
    proc = run_command(base + [f"--weights={b}"])
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f"litedepth_fp32.tflite: cannot reuse it: exported from weights {a!r}, not {b!r}")
    proc = run_command(base + [f"--weights={a}"])  # the fp32 file matches; the fp16 one is missing
    assert proc.returncode == 2 and not out.exists()
    assert "litedepth_fp16.tflite: no such file to reuse" in proc.stderr.strip().splitlines()[-1]
