"""Rebuild one of the paper's ablation tables (LiteDepth, Tables 3-6) with this project's training.

    python -m litedepth_tf.ablate --table=5 --data_root=data/synthetic --steps=300 --seeds=2 --out=runs/ablate \\
        [--base=flags/demo.cfg] [--extra_flags=--depth_stride=4] [--rows=si,all_dynamic]
    python -m litedepth_tf.ablate --table=6 ... --teacher_weights=runs/demo_teacher/best.weights.h5 \\
        --teacher_preset=micro --stage1_weights=runs/demo/best.weights.h5

Trains every row of the table (`--rows_file`, default flags/ablations/tables.json: each row a set of train flags on
top of `--base`) for `--seeds` seeds at `--steps` steps, reads each run's final validation si-RMSE, and writes
`OUT/table<N>.md` and `OUT/table<N>.json` (the paper's si-RMSE, this project's mean / std over seeds, the paired
difference to the table's baseline row; Table 3 adds the TFLite latency here, merged vs unmerged normalisation).
Runs live in `OUT/runs/<row>/seed<k>/`; a finished run is never run again, so a killed ablation resumes.
Library: `litedepth_tf.training.ablation`.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import tempfile
import time

import keras
from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import check_writable
from litedepth_tf.models import presets
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite.benchmark import measure_latency
from litedepth_tf.tflite.export import export_tflite
from litedepth_tf.training import ablation

# The train command, by name: a command never imports another one (tests/package/test_layers.py), so the
# in-process runner resolves it at run time, the way presets resolve their builders.
TRAIN_MODULE = "litedepth_tf.train"


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_enum("table", None, list(ablation.TABLES), "Which table of the paper to rebuild.", **d)
    flags.DEFINE_string("data_root", None, "Data root (ROOT/<split>/{rgb,depth}/*.png) for every run.", **d)
    flags.DEFINE_integer("steps", None, "Training steps of every run (the budget, the same for every row).",
                         lower_bound=1, **d)
    flags.DEFINE_integer("seeds", 2, "Seeds per row (0 .. N-1); >= 2 gives a spread and a paired comparison.",
                         lower_bound=1, **d)
    flags.DEFINE_string("out", None, "Output folder: table<N>.md, table<N>.json, runs/, latency.json.", **d)
    flags.DEFINE_string("base", "flags/demo.cfg", "Base train flagfile under every row ('' = train defaults).", **d)
    flags.DEFINE_multi_string("extra_flags", [], "A train flag added after every row's (repeatable), e.g. "
                              "--extra_flags=--depth_stride=4.", **d)
    flags.DEFINE_string("rows_file", "flags/ablations/tables.json", "The tables' rows (JSON).", **d)
    flags.DEFINE_list("rows", [], "Run only these row ids (and the baseline); default: every row.", **d)
    flags.DEFINE_string("teacher_weights", None, "Table 6: the teacher's .weights.h5.", **d)
    flags.DEFINE_string("teacher_preset", "micro", "Table 6: the teacher preset (micro|tiny|base|large).", **d)
    flags.DEFINE_string("stage1_weights", None, "Table 6: the stage-1 student (.weights.h5) two-stage rows "
                        "fine-tune.", **d)
    flags.DEFINE_string("val_split", "local_val", "Validation split (the evaluate-only rows; runs use the base's).",
                        **d)
    flags.DEFINE_integer("latency_runs", 30, "Table 3: timed TFLite invocations per architecture.", lower_bound=1,
                         **d)
    flags.DEFINE_bool("in_process", False, "Train in this process (faster start; default: one subprocess per "
                      "run, so a crash or a leak of one run cannot take the others down).", **d)
    flags.mark_flags_as_required(["table", "data_root", "steps", "out"], flag_values=fv)
    return fv


def train_in_process(argv) -> int:
    train = importlib.import_module(TRAIN_MODULE)
    keras.backend.clear_session()
    return cli.call(train.main, train.define_flags, argv)


def train_subprocess(argv) -> int:
    return subprocess.call([sys.executable, "-m", TRAIN_MODULE, *argv[1:]])


def tflite_latency(spec, runs: int = 30, threads: int = 1) -> float:
    """Median fp32 TFLite latency (ms, `threads` threads) of the student deploy view with `spec["decoder"]`,
    the normalisation merged into the first conv or not (`spec["merge_normalization"]`); random weights."""
    model = presets.build_model(presets.student_preset(spec["decoder"]))
    deploy = build_deploy_model(model, merge_normalization=bool(spec["merge_normalization"]))
    with tempfile.TemporaryDirectory(prefix="litedepth_ablate_") as tmp:
        path = export_tflite(deploy, os.path.join(tmp, "model.tflite"))
        return measure_latency(path, threads, runs=runs).median_ms


def main(argv, fv):
    logging.getLogger().setLevel(logging.INFO)
    if not os.path.isdir(fv.data_root):
        raise cli.InputError(f"--data_root={fv.data_root!r} does not exist")
    if fv.base and not os.path.isfile(fv.base):
        raise cli.InputError(f"--base={fv.base!r}: no such flagfile")
    spec = ablation.load_table(fv.rows_file, fv.table)
    unknown = sorted(set(fv.rows) - {r["id"] for r in spec["rows"]})
    if unknown:
        raise cli.InputError(f"--rows: no row {unknown} in table {fv.table} (rows: {[r['id'] for r in spec['rows']]})")
    os.makedirs(fv.out, exist_ok=True)
    check_writable(fv.out, what="--out folder")
    params = {"teacher_weights": fv.teacher_weights, "teacher_preset": fv.teacher_preset,
              "stage1_weights": fv.stage1_weights}
    t0 = time.perf_counter()
    result = ablation.run_table(fv.table, spec, train_in_process if fv.in_process else train_subprocess,
                                fv.data_root, fv.out, fv.steps, fv.seeds, base=fv.base or None,
                                extra_flags=fv.extra_flags, params=params, only_rows=fv.rows,
                                latency_fn=lambda spec: tflite_latency(spec, runs=fv.latency_runs),
                                val_split=fv.val_split)
    print(ablation.format_markdown(result))
    print(f"table {fv.table}: {result['trained']} runs trained, {result['reused']} finished runs reused, "
          f"{time.perf_counter() - t0:.0f} s; {os.path.join(fv.out, f'table{fv.table}.md')}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
