"""data_check: a set with several problems is reported in full, every bad file named, exit code 1."""

import os

import numpy as np
from PIL import Image

from litedepth_tf.data import check as data_check
from litedepth_tf import data_check as data_check_cmd
from tests.helpers import call_main

H, W = 480, 640


def write_pair(split_dir, stem, rgb=None, depth=None):
    for sub in ("rgb", "depth"):
        os.makedirs(split_dir / sub, exist_ok=True)
    if rgb is None:
        rgb = np.full((H, W, 3), 90, np.uint8)
    if depth is None:
        depth = np.full((H, W), 2500, np.uint16)
        depth[:20] = 0
    if rgb is not False:
        Image.fromarray(rgb).save(split_dir / "rgb" / f"{stem}.png", compress_level=1)
    if depth is not False:
        Image.fromarray(depth).save(split_dir / "depth" / f"{stem}.png", compress_level=1)


def test_clean_set_passes(tmp_path, capsys):
    for i in range(3):
        write_pair(tmp_path / "train", f"{i:05d}")
    write_pair(tmp_path / "custom_val", "a")
    assert call_main(data_check_cmd, "--data_root", tmp_path, "--noprogress") == 0
    out = capsys.readouterr().out
    assert "custom_val" in out and "train" in out and "OK: 4 pairs" in out
    assert "2.500" in out  # depth range column


def test_every_problem_reported(tmp_path, capsys):
    s = tmp_path / "train"
    write_pair(s, "00000")  # good
    write_pair(s, "00001")
    (s / "rgb" / "00001.png").write_bytes((s / "rgb" / "00001.png").read_bytes()[:300])  # truncated = corrupt
    write_pair(s, "00002", depth=np.full((H, W), 50, np.uint8))  # 8-bit depth
    write_pair(s, "00003", rgb=np.zeros((240, 320, 3), np.uint8))  # size mismatch
    write_pair(s, "00004", depth=False)  # missing pair
    write_pair(s, "00005", depth=np.zeros((H, W), np.uint16))  # all invalid
    write_pair(s, "00006", depth=np.full((H, W), 50000, np.uint16))  # all beyond 40 m -> all invalid
    write_pair(s, "00007", rgb=np.zeros((H, W), np.uint8))  # grayscale rgb
    rc = call_main(data_check_cmd, "--data_root", tmp_path, "--noprogress")
    out = capsys.readouterr().out
    assert rc == 1
    bad = {"rgb/00001.png", "depth/00002.png", "rgb/00003.png", "rgb/00004.png", "depth/00005.png",
           "depth/00006.png", "rgb/00007.png"}
    tail = out.split("FAILED")[1]
    for f in bad:
        assert os.path.join("train", *f.split("/")) in tail, (f, out)
    assert "00000" not in tail
    assert "7 bad file(s)" in out
    assert "8-bit" in out and "no depth partner" in out and "no valid depth" in out and "cannot decode" in out


def test_check_dataset_api_and_splits_option(tmp_path):
    write_pair(tmp_path / "a", "x")
    write_pair(tmp_path / "b", "y", depth=np.zeros((H, W), np.uint16))
    rep = data_check.check_dataset(str(tmp_path), splits=["a"], progress=False)
    assert list(rep) == ["a"] and rep["a"]["bad_files"] == []
    rep = data_check.check_dataset(str(tmp_path), progress=False)
    assert rep["b"]["bad_files"] == [str(tmp_path / "b" / "depth" / "y.png")]
    assert abs(rep["a"]["valid_fraction"][0] - (1 - 20 / H)) < 1e-6
