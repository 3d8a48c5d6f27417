"""The library behind export/benchmark_pipeline.py (litedepth_tf.training.pipeline_benchmark) on a tiny set: what
it counts and where it reads, not how fast (speed targets live in the benchmark's own output)."""

import os

import pytest

from litedepth_tf.training import pipeline_benchmark as pb
from tests.helpers import synthetic_root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return synthetic_root(tmp_path_factory, "pipe_bench", 4, 1, seed=2)


def test_layout_row_counts_the_images_and_the_ratio(root):
    lines = []
    res = pb.benchmark_layout(root, "train", batch_size=2, steps=2, train_steps=1, train_step=True, log=lines.append)
    assert res["data_root"] == root and res["batch_size"] == 2 and res["pipeline_images_per_second"] > 0
    assert set(res["train_step_images_per_second_by_crop"]) == {"240x384", "360x512", "480x640"}
    assert res["pipeline_over_train_step"] == pytest.approx(res["pipeline_images_per_second"]
                                                            / res["train_step_images_per_second"])
    assert [line.split(":")[0] for line in lines] == ["pipeline", "train step", "ratio"]


def test_missing_data_is_generated_and_said(tmp_path):
    lines = []
    pb.ensure_data(str(tmp_path / "d"), "train", 2, log=lines.append)
    assert len(os.listdir(tmp_path / "d" / "train" / "rgb")) == 2 and lines[0].startswith("no data under")
    pb.ensure_data(str(tmp_path / "d"), "train", 2, log=lines.append)
    assert len(lines) == 1  # there now: nothing generated


def test_presets_read_their_own_fixture_and_keep_the_mai_split(root, tmp_path):
    res = pb.benchmark_presets(["nyu", "mai2022"], root, "train", batch_size=2, steps=1, gen_train=2,
                               fixture_dir=str(tmp_path), train_step=False, log=lambda m: None)
    assert res["mai2022"]["fixture"] == f"{root}/train (MAI layout)"  # not the NYU fixture's split
    assert "nyu format" in res["nyu"]["fixture"] and os.path.exists(tmp_path / "nyu_2" / ".complete")
    assert res["nyu"]["frame_size"] == [480, 640] and all(r["pipeline_images_per_second"] > 0 for r in res.values())
