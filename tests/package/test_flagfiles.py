"""Every flagfile in flags/ parses with the training flags (a renamed or mistyped flag fails here, not an hour into
a run) and starts with the documented header: the exact command and the hardware / time / metric line."""

import glob
import os

import pytest
from absl import flags

from litedepth_tf import train
from litedepth_tf.data import datasets
from litedepth_tf.models.presets import get_preset
from tests.helpers import REPO

CFGS = sorted(glob.glob(os.path.join(REPO, "flags", "*.cfg")))


def test_there_are_flagfiles():
    names = {os.path.basename(p) for p in CFGS}
    assert {"student.cfg", "demo.cfg", "teacher.cfg", "distill.cfg", "demo_teacher.cfg", "demo_distill.cfg",
            "nyu.cfg", "kitti.cfg"} <= names


@pytest.mark.parametrize("path", CFGS, ids=os.path.basename)
def test_flagfile_parses_and_has_header(path, monkeypatch):
    monkeypatch.chdir(REPO)  # flagfiles include each other by repo-relative path
    fv = train.define_flags(flags.FlagValues())
    fv(["train", f"--flagfile={os.path.relpath(path, REPO)}"])
    assert fv.run_dir and fv.data_root
    assert fv.steps > 0 or fv.epochs > 0
    header = open(path).read().split("\n--", 1)[0]
    name = os.path.relpath(path, REPO)
    assert f"--flagfile={name}" in header, f"{name}: header does not give the command that runs it"
    assert "Hardware" in header or "Measured" in header, f"{name}: header gives no hardware / time / metric"


def test_unknown_flag_in_a_flagfile_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.cfg"
    bad.write_text("--flagfile=flags/demo.cfg\n--learning_rat=1e-3\n")
    fv = train.define_flags(flags.FlagValues())
    with pytest.raises(flags.Error, match="learning_rat"):
        fv(["train", f"--flagfile={bad}"])


@pytest.mark.parametrize("args, per_image", [([], False), (["--si_per_image"], True)])
def test_loss_flags_reach_the_loss_config(args, per_image):
    fv = train.define_flags(flags.FlagValues())
    fv(["train", "--data_root=d", "--run_dir=r", "--steps=1", "--si_lambda=0.25", "--robust_c=1.5",
        "--vnl_ratio=0.3", "--grad_nan_mask=authors_code", "--vnl_intrinsics=crop", *args])
    cfg = train.loss_config(fv)
    assert (cfg.si_lambda, cfg.robust_c, cfg.vnl_ratio, cfg.si_per_image) == (0.25, 1.5, 0.3, per_image)
    assert (cfg.grad_mask, cfg.vnl_intrinsics) == ("authors_code", "crop")


@pytest.mark.parametrize("name, dataset, model", [("nyu.cfg", "nyu", "student"), ("kitti.cfg", "kitti", "student_80m")])
def test_dataset_flagfiles_match_their_preset(name, dataset, model, monkeypatch):
    """The data set flagfiles train the preset they name, with its R-crop sizes, a head that covers its range,
    and say that they were not run on the real data here."""
    monkeypatch.chdir(REPO)
    fv = train.define_flags(flags.FlagValues())
    fv(["train", f"--flagfile=flags/{name}"])
    preset = datasets.get_preset(fv.dataset)
    assert fv.dataset == dataset and fv.model == model and fv.split_file and fv.val_split_file
    assert tuple(train._parse_crop(c) for c in fv.crop_sizes) == preset.crop_sizes
    assert get_preset(model).max_depth >= preset.max_depth
    assert "NOT run on the real" in open(os.path.join(REPO, "flags", name)).read().split("\n--", 1)[0]


def test_head_bias_init_reads_the_training_median(tmp_path):
    """--head_bias_init=median: the median valid depth of the training depth maps (PNG millimetres), at most the
    data set's range; a number is taken as metres."""
    import numpy as np
    from PIL import Image

    pairs = []
    for i, value in enumerate((1500, 2500, 9000)):
        depth = np.full((4, 4), value, np.uint16)
        depth[0, 0] = 0  # invalid pixels do not count
        path = tmp_path / f"d{i}.png"
        Image.fromarray(depth).save(path)
        pairs.append((f"s{i}", str(path), str(path)))
    preset = datasets.get_preset("mai2022")
    assert train.initial_head_depth("median", preset, pairs) == pytest.approx(2.5)
    assert train.initial_head_depth("4.25", preset, pairs) == 4.25
    fv = train.define_flags(flags.FlagValues())
    with pytest.raises(flags.IllegalFlagValueError, match="head_bias_init"):
        fv(["train", "--data_root=d", "--run_dir=r", "--steps=1", "--head_bias_init=mean"])
