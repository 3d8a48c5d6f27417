"""The paper's ablation tables (LiteDepth, Tables 3-6) as runs: rows as data, seeds, resume, paired comparison.

A table (`flags/ablations/tables.json`) is a list of rows; a row is a set of `train` flags on top of one base
flagfile (the same budget for every row: `--steps`, and the base's data and optimiser), or, for a reference
model that is not trained here (Table 6's teacher), weights to evaluate. `run_table` trains every row for every
seed `0 .. seeds-1` into `out/runs/<row>/seed<k>/` and reads the run's final validation (`summary.json`: the last
step's MAI metrics on the validation split, the train command validates at the end); rows with the same flags
share their runs (Table 3's unmerged and merged "Mix" train the same model). A run whose `summary.json` reached
`--steps` with a validation is finished and never run again; an unfinished one is continued (`--resume`), so a
killed ablation resumes where it stopped.

Per row: the mean and the sample standard deviation of si-RMSE over seeds, and the paired comparison with the
table's baseline row (the paper's choice): per seed `d_k = row_k - baseline_k`, their mean and standard error
`std(d, ddof=1) / sqrt(n)` (seeds share data order and initialisation, so pairing removes that part of the
spread). Table 3 rows also get the latency of their architecture on this machine (the command passes a
`latency_fn`: TFLite fp32, random weights since latency does not depend on them), merged vs unmerged
normalisation, cached in `out/latency.json`.

Training goes through a `train_fn(argv) -> exit status` the command supplies (the train command in this process
or in a subprocess), so this library never imports a command.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from litedepth_tf.common import files as fsutil
from litedepth_tf.common.cli import InputError
from litedepth_tf.evaluation.evaluator import evaluate_model

log = logging.getLogger("litedepth_tf.training.ablation")

TABLES = ("3", "4", "5", "6")
PLACEHOLDERS = ("teacher_weights", "teacher_preset", "stage1_weights")
# Overrides of every run: validation only at the end (the number the table reports), no images, and a log /
# checkpoint cadence that suits any --steps.
RUN_FLAGS = ("--eval_every=0", "--image_every=0")


def load_table(rows_file, table: str) -> dict:
    """The table `table` of `rows_file`; a missing file, table or baseline is an InputError naming it."""
    try:
        with open(rows_file) as f:
            tables = json.load(f)
    except FileNotFoundError:
        raise InputError(f"--rows_file={rows_file!r}: no such file") from None
    except ValueError as err:
        raise InputError(f"--rows_file={rows_file!r}: not valid JSON ({err})") from None
    if table not in tables:
        raise InputError(f"--rows_file={rows_file!r} has no table {table!r} (tables: "
                         f"{sorted(k for k in tables if not k.startswith('_'))})")
    spec = tables[table]
    ids = [r["id"] for r in spec["rows"]]
    if spec.get("baseline") not in ids:
        raise InputError(f"--rows_file={rows_file!r}: table {table}'s baseline {spec.get('baseline')!r} is not a row")
    return spec


def substitute(values, params: dict, row_id: str):
    """Fills the {placeholders} of a row's flags / evaluate spec; a missing one is an InputError naming its flag."""
    def fill(text):
        def one(m):
            key = m.group(1)
            if not params.get(key):
                raise InputError(f"row {row_id!r} needs --{key}")
            return str(params[key])
        return re.sub(r"\{(\w+)\}", one, text)

    if isinstance(values, dict):
        return {k: fill(v) for k, v in values.items()}
    return [fill(v) for v in values]


def run_key(flags_list) -> str:
    return "\n".join(flags_list)


def run_dir(out, row_id: str, seed: int) -> str:
    return os.path.join(out, "runs", row_id, f"seed{seed}")


def finished_summary(path, steps: int):
    """The run's summary.json if it reached `steps` and validated at the end, else None."""
    try:
        with open(os.path.join(path, "summary.json")) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    history = summary.get("validation") or []
    if summary.get("step") != steps or not history or history[-1].get("step") != steps:
        return None
    return summary


def checkpoint_step(path) -> int:
    """The step of the run's latest checkpoint (`ckpt/ckpt-<step>`), 0 if none."""
    latest = tf.train.latest_checkpoint(os.path.join(path, "ckpt"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def prepare_unfinished(path, steps: int) -> bool:
    """Whether to resume an unfinished run: yes from a checkpoint before `steps`; a run killed after its last
    checkpoint but before its final validation holds nothing to resume, so its folder is cleared and it is
    trained again from scratch."""
    done = checkpoint_step(path)
    if done >= steps:
        shutil.rmtree(path)
        return False
    return done > 0


def train_argv(base, row_flags, extra_flags, data_root, steps: int, seed: int, path: str, resume: bool):
    argv = ["litedepth_tf.train"]
    if base:
        argv.append(f"--flagfile={base}")
    argv += [*row_flags, *extra_flags, *RUN_FLAGS, f"--data_root={data_root}", f"--steps={steps}",
             f"--seed={seed}", f"--run_dir={path}", f"--ckpt_every={max(steps // 4, 1)}",
             f"--log_every={max(min(steps // 4, 50), 1)}"]
    if resume:
        argv.append("--resume")
    return argv


def paired(values, base_values):
    """Mean paired difference and its standard error over the seeds both have (None where n < 2)."""
    common = sorted(set(values) & set(base_values))
    d = np.array([values[s] - base_values[s] for s in common], np.float64)
    if not len(d):
        return None, None, 0
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else None
    return float(d.mean()), se, len(d)


def cached_latency(row_id: str, spec: dict, cache_path: str, latency_fn) -> float:
    """`latency_fn(spec) -> ms` of a row's runtime spec (`decoder`, `merge_normalization`), cached by row and spec
    in `cache_path` (a resumed ablation does not measure again)."""
    cache = {}
    if os.path.isfile(cache_path):
        with open(cache_path) as f:
            cache = json.load(f)
    key = f"{row_id}:{spec['decoder']}:{bool(spec['merge_normalization'])}"
    if key not in cache:
        cache[key] = float(latency_fn(spec))
        fsutil.atomic_write_json(cache_path, cache)
    return float(cache[key])


def run_table(table: str, spec: dict, train_fn, data_root, out, steps: int, seeds: int, base=None,
              extra_flags=(), params=None, only_rows=None, latency_fn=None, val_split="local_val") -> dict:
    """Runs (or resumes) every row of `spec` for `seeds` seeds; returns the result dict (also the JSON).
    `latency_fn(runtime spec) -> ms`: Table 3's latency (the command measures it with TFLite; None = skip)."""
    params = dict(params or {})
    rows = [r for r in spec["rows"] if not only_rows or r["id"] in only_rows or r["id"] == spec["baseline"]]
    os.makedirs(out, exist_ok=True)
    shared = {}  # flags -> the row id whose runs they are
    results, counts = [], {"trained": 0, "reused": 0}
    for row in rows:
        entry = {k: row.get(k) for k in ("id", "name", "paper_si_rmse", "paper_runtime_ms") if k in row}
        entry["si_rmse"] = {}
        if "evaluate" in row:  # a reference model: evaluated once, no seeds
            ev = substitute(row["evaluate"], params, row["id"])
            if not os.path.isfile(ev["weights"]):
                raise InputError(f"row {row['id']!r}: weights {ev['weights']!r} not found")
            report = evaluate_model(ev["weights"], data_root, val_split, model_name=ev["model"], baseline=False,
                                    progress=False)
            entry["si_rmse"] = {"-": report["metrics"]["si_rmse"]}
            entry["evaluated"] = ev
        else:
            row_flags = substitute(row["flags"], params, row["id"])
            owner = shared.setdefault(run_key(row_flags), row["id"])
            entry["runs_of"] = owner
            for seed in range(seeds):
                path = run_dir(out, owner, seed)
                summary = finished_summary(path, steps)
                if summary is None:
                    argv = train_argv(base, row_flags, list(extra_flags), data_root, steps, seed, path,
                                      resume=prepare_unfinished(path, steps))
                    log.info("table %s, row %s, seed %d: training (%s)", table, row["id"], seed, " ".join(argv[1:]))
                    status = train_fn(argv)
                    summary = finished_summary(path, steps)
                    if status != 0 or summary is None:
                        raise RuntimeError(f"row {row['id']!r} seed {seed}: train exited {status}; see {path}")
                    counts["trained"] += 1
                else:
                    counts["reused"] += 1
                entry["si_rmse"][str(seed)] = float(summary["validation"][-1]["si_rmse"])
        vals = list(entry["si_rmse"].values())
        entry["mean"] = float(np.mean(vals))
        entry["std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        if "runtime" in row and latency_fn is not None:
            entry["runtime_ms"] = cached_latency(row["id"], row["runtime"], os.path.join(out, "latency.json"),
                                                 latency_fn)
            entry["merge_normalization"] = bool(row["runtime"]["merge_normalization"])
        results.append(entry)
    by_id = {e["id"]: e for e in results}
    base_row = by_id[spec["baseline"]]
    for e in results:
        e["diff"], e["diff_se"], e["n_paired"] = paired(e["si_rmse"], base_row["si_rmse"]) \
            if "evaluated" not in e and "evaluated" not in base_row else (None, None, 0)
        if e["paper_si_rmse"] is not None and base_row.get("paper_si_rmse") is not None:
            e["paper_diff"] = round(e["paper_si_rmse"] - base_row["paper_si_rmse"], 4)
        else:
            e["paper_diff"] = None
    result = {"table": table, "title": spec.get("title", f"Table {table}"), "baseline": spec["baseline"],
              "steps": steps, "seeds": seeds, "base_flagfile": base, "extra_flags": list(extra_flags),
              "data_root": data_root, "rows": results, **counts}
    fsutil.atomic_write_json(os.path.join(out, f"table{table}.json"), result)
    fsutil.atomic_write_text(os.path.join(out, f"table{table}.md"), format_markdown(result))
    return result


def _f(x, digits=3, signed=False):
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def format_markdown(result: dict) -> str:
    runtime = any("runtime_ms" in r for r in result["rows"])
    head = ["row", "paper si-RMSE", "paper diff"]
    if runtime:
        head += ["MIN", "paper runtime (ms)", "TFLite fp32 1-thread here (ms)"]
    head += ["si-RMSE here: mean", "std", "per seed", "diff to baseline (paired)", "n"]
    lines = [f"### {result['title']}", "",
             f"Budget: {result['steps']} steps x {result['seeds']} seeds per row, base "
             f"`{result['base_flagfile']}` {' '.join(result['extra_flags'])}; baseline row "
             f"`{result['baseline']}`; diff = row - baseline, mean over seeds +- its standard error.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        name = r["name"] + (" (baseline)" if r["id"] == result["baseline"] else "")
        cells = [name, _f(r["paper_si_rmse"]), _f(r["paper_diff"], signed=True)]
        if runtime:
            cells += ["yes" if r.get("merge_normalization") else "no", _f(r.get("paper_runtime_ms"), 0),
                      _f(r.get("runtime_ms"), 2)]
        diff = "-" if r["diff"] is None or r["id"] == result["baseline"] else (
            _f(r["diff"], 4, True) + ("" if r["diff_se"] is None else f" +- {r['diff_se']:.4f}"))
        cells += [_f(r["mean"], 4), _f(r["std"], 4), ", ".join(f"{v:.4f}" for v in r["si_rmse"].values()), diff,
                  str(r["n_paired"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
