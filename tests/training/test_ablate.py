"""`python -m litedepth_tf.ablate` on a tiny synthetic set: 2 rows x 1 seed x 2 steps, the files it writes, the
paired comparison, and a second call that reuses finished runs (and reruns only an unfinished one)."""

from __future__ import annotations

import json
import os

import pytest

from litedepth_tf import ablate
from litedepth_tf.training import ablation
from tests.helpers import REPO, call_main, synthetic_root

CHEAP = ["--batch_size=2", "--val_max_images=1", "--precise_bn_batches=1", "--warmup_steps=1",
         "--depth_stride=4", "--cache_in_memory", "--min_free_mb=1"]
ROWS = {"3": {"title": "tiny", "baseline": "mix_min", "rows": [
    {"id": "mix_min", "name": "Mix + MIN", "flags": ["--decoder=mix", "--crop_sizes=240x384"],
     "paper_si_rmse": 0.301, "paper_runtime_ms": 37, "runtime": {"decoder": "mix", "merge_normalization": True}},
    {"id": "c1", "name": "1x1, si only", "flags": ["--decoder=conv1x1", "--loss_terms=si", "--crop_sizes=240x384"],
     "paper_si_rmse": 0.308},
    {"id": "same", "name": "Mix, same flags", "flags": ["--decoder=mix", "--crop_sizes=240x384"],
     "paper_si_rmse": 0.301}]}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "ablate_data", 4, 1, seed=3)


def _ablate(rows_file, data_root, out, *more):
    return call_main(ablate, "--table=3", f"--rows_file={rows_file}", f"--data_root={data_root}", "--steps=2",
                     "--seeds=1", f"--out={out}", "--base=", "--in_process", "--latency_runs=2",
                     *[f"--extra_flags={f}" for f in CHEAP], *more)


def test_ablate_writes_tables_and_resumes(data_root, tmp_path, capsys):
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(ROWS))
    out = tmp_path / "out"
    assert _ablate(rows_file, data_root, out) == 0
    result = json.loads((out / "table3.json").read_text())
    assert (result["trained"], result["reused"]) == (2, 1)  # "same" reads mix_min's run
    by_id = {r["id"]: r for r in result["rows"]}
    for rid in ("mix_min", "c1"):
        summary = json.loads((out / "runs" / rid / "seed0" / "summary.json").read_text())
        assert by_id[rid]["si_rmse"] == {"0": pytest.approx(summary["validation"][-1]["si_rmse"])}
        assert summary["step"] == 2
    flags_txt = (out / "runs" / "c1" / "seed0" / "flags.txt").read_text()
    assert "--decoder=conv1x1" in flags_txt and "--loss_terms=si" in flags_txt and "--steps=2" in flags_txt
    c1 = by_id["c1"]
    assert c1["diff"] == pytest.approx(c1["mean"] - by_id["mix_min"]["mean"]) and c1["n_paired"] == 1
    assert c1["diff_se"] is None and c1["std"] is None  # one seed: no spread
    assert c1["paper_diff"] == pytest.approx(0.007)
    assert by_id["mix_min"]["runtime_ms"] > 0 and by_id["mix_min"]["merge_normalization"] is True
    md = (out / "table3.md").read_text()
    assert "| Mix + MIN (baseline) | 0.301 |" in md and "1x1, si only" in md and "TFLite fp32" in md
    assert len(json.loads((out / "latency.json").read_text())) == 1

    assert by_id["same"]["runs_of"] == "mix_min" and by_id["same"]["si_rmse"] == by_id["mix_min"]["si_rmse"]

    # a second call trains nothing (the table is rebuilt from the finished runs)
    assert _ablate(rows_file, data_root, out) == 0
    again = json.loads((out / "table3.json").read_text())
    assert (again["trained"], again["reused"]) == (0, 3)
    assert again["rows"] == result["rows"]

    # a run killed before its summary: resumed from a checkpoint before the end, retrained after the last one
    run = out / "runs" / "c1" / "seed0"
    assert ablation.finished_summary(str(run), 2) is not None and ablation.finished_summary(str(run), 3) is None
    assert ablation.checkpoint_step(str(run)) == 2
    assert ablation.prepare_unfinished(str(run), 3) is True and run.is_dir()
    assert ablation.prepare_unfinished(str(run), 2) is False and not run.exists()


def test_paired_difference():
    mean, se, n = ablation.paired({"0": 0.30, "1": 0.34, "2": 0.31}, {"0": 0.29, "1": 0.31, "2": 0.30})
    d = [0.01, 0.03, 0.01]
    assert n == 3 and mean == pytest.approx(sum(d) / 3)
    assert se == pytest.approx(0.011547005 / 3 ** 0.5)


def test_bad_input_is_one_line(data_root, tmp_path, capsys):
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(ROWS))
    assert _ablate(rows_file, data_root, tmp_path / "o", "--rows=nope") == 2
    assert "--rows: no row ['nope']" in capsys.readouterr().err
    assert _ablate(tmp_path / "missing.json", data_root, tmp_path / "o") == 2
    assert "missing.json" in capsys.readouterr().err
    six = {"3": {"baseline": "t", "rows": [{"id": "t", "name": "T", "paper_si_rmse": 0.2,
                                            "evaluate": {"weights": "{teacher_weights}", "model": "teacher_swin_micro"}}]}}
    rows_file.write_text(json.dumps(six))
    assert _ablate(rows_file, data_root, tmp_path / "o") == 2
    assert "row 't' needs --teacher_weights" in capsys.readouterr().err


def test_shipped_tables_are_well_formed():
    for table in ablation.TABLES:
        spec = ablation.load_table(os.path.join(REPO, "flags", "ablations", "tables.json"), table)
        ids = [r["id"] for r in spec["rows"]]
        assert len(ids) == len(set(ids)) and spec["baseline"] in ids
