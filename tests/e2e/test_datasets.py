"""The commands on other data sets, end to end on fixtures in their real formats: data_check (sparse KITTI, a wrong
depth scale, a missing split-file line), evaluate with the preset's crop (and the same MAI metrics for the same
frames in the NYU and MAI layouts), and a training step on KITTI."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from litedepth_tf import data_check, evaluate, train
from litedepth_tf.data import convert, datasets, fixtures
from litedepth_tf.models.student import build_student
from tests.evaluation.test_standard_metrics import toolbox_reference
from tests.helpers import call_main, make_depth_nontrivial, random_student, synthetic_root


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return fixtures.write_kitti(tmp_path_factory.mktemp("kitti_e2e"), n=2, seed=4, none_lines=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    student = folder / "student.weights.h5"
    random_student(0).save_weights(str(student))
    wide = build_student(max_depth=80.0)  # student_80m: the same weights, an 80 m head
    make_depth_nontrivial(wide)
    wide.save_weights(str(folder / "student_80m.weights.h5"))
    return str(student), str(folder / "student_80m.weights.h5")


def test_data_check_kitti(kitti, capsys, tmp_path):
    args = ["--dataset=kitti", f"--data_root={kitti['root']}", f"--split_file={kitti['split_file']}", "--noprogress"]
    assert call_main(data_check, *args) == 0
    out = capsys.readouterr().out
    assert "OK: 2 pairs checked (1 split-file line(s) without ground truth skipped)" in out  # sparse GT is fine
    assert call_main(data_check, *args, "--depth_scale=1000") == 1
    out = capsys.readouterr().out
    assert "implausible" in out and "the likely right scale is --depth_scale=256" in out
    lines = open(kitti["split_file"]).read().splitlines()
    bad = tmp_path / "kitti_bad.txt"
    bad.write_text(lines[0] + "\n" + lines[1].replace("0000000001.png", "0000000099.png", 1) + "\n")
    assert call_main(data_check, "--dataset=kitti", f"--data_root={kitti['root']}", f"--split_file={bad}",
                     "--noprogress") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kitti_bad.txt:2: rgb file" in err and "0000000099.png" in err


def test_evaluate_kitti_with_its_crop(kitti, weights, tmp_path, capsys):
    preds = tmp_path / "pred"
    args = ["--model=student_80m", f"--weights={weights[1]}", "--dataset=kitti", f"--data_root={kitti['root']}",
            f"--split_file={kitti['split_file']}", "--nobaseline"]
    assert call_main(evaluate, *args, f"--out={tmp_path / 'garg.json'}", f"--save_predictions={preds}") == 0
    assert "standard metrics (kitti: eval crop garg" in capsys.readouterr().out
    garg = json.load(open(tmp_path / "garg.json"))
    assert set(garg["standard_metrics"]) == {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1",
                                             "delta2", "delta3"}
    p = garg["protocol"]
    assert (p["eval_crop"], p["crop_box"], p["n_images"], p["split_file_lines_without_gt"]) == (
        "garg", [143, 349, 43, 1172], 2, 1)
    assert set(garg["metrics"]) >= {"si_rmse", "rmse", "abs_rel"}  # the MAI metrics stay beside them
    # the same numbers from the saved predictions (uint16 mm) and the GT, through the toolbox transcription
    listing = datasets.list_samples(datasets.KITTI, kitti["root"], None, kitti["split_file"])
    rows = []
    for _, rgb, dep in listing.pairs:
        raw = np.asarray(Image.open(dep)).astype(np.float64) / 256.0
        top, left = raw.shape[0] - 352, (raw.shape[1] - 1216) // 2
        gt = raw[top:top + 352, left:left + 1216]
        pred = np.asarray(Image.open(preds / os.path.basename(rgb))).astype(np.float64) / 1000.0
        rows.append(toolbox_reference(gt, np.clip(pred, 1e-3, 80.0), 1e-3, 80.0, (143, 349, 43, 1172)))
    for k, name in (("abs_rel", "abs_rel"), ("rmse", "rmse"), ("delta1", "delta1"), ("silog", "silog")):
        assert garg["standard_metrics"][k] == pytest.approx(np.mean([r[name] for r in rows]), rel=2e-3, abs=2e-3)
    assert call_main(evaluate, *args, "--eval_crop=eigen", "--align=median", f"--out={tmp_path / 'eigen.json'}") == 0
    eigen = json.load(open(tmp_path / "eigen.json"))
    assert eigen["protocol"]["crop_box"] == [int(0.3324324 * 352), int(0.91351351 * 352), 43, 1172]
    assert eigen["protocol"]["align"] == "median" and eigen["metrics"] == garg["metrics"]
    assert eigen["standard_metrics"]["abs_rel"] != garg["standard_metrics"]["abs_rel"]


def test_nyu_layout_gives_the_same_mai_metrics(tmp_path_factory, weights, tmp_path):
    root = synthetic_root(tmp_path_factory, "nyu_vs_mai", 1, 3, seed=11)
    info = convert.mai_to_nyu(root, "local_val", str(tmp_path / "nyu"), progress=False)
    common = [f"--weights={weights[0]}", "--nobaseline"]
    assert call_main(evaluate, *common, f"--data_root={root}", f"--out={tmp_path / 'mai.json'}") == 0
    nyu_args = [*common, "--dataset=nyu", f"--data_root={tmp_path / 'nyu' / 'local_val'}",
                f"--split_file={info['split_file']}"]
    # the synthetic depth reaches 40 m: with NYU's own 10 m range the farther pixels would be invalid, so the
    # comparison keeps MAI's range; everything else (listing, decoding, scaling, the model) is the NYU preset's
    assert call_main(evaluate, *nyu_args, "--max_depth=40", f"--out={tmp_path / 'nyu40.json'}") == 0
    mai, nyu = json.load(open(tmp_path / "mai.json")), json.load(open(tmp_path / "nyu40.json"))
    assert mai["n_images"] == nyu["n_images"] == 3 and mai["metrics"] == nyu["metrics"]
    assert nyu["protocol"]["eval_crop"] == "eigen" and nyu["protocol"]["crop_box"] == [45, 471, 41, 601]


def test_train_steps_on_kitti(kitti, tmp_path):
    run = tmp_path / "run"
    rc = call_main(train, "--dataset=kitti", "--model=student_80m", f"--data_root={kitti['root']}",
                   f"--split_file={kitti['split_file']}", "--val_split=", f"--val_split_file={kitti['split_file']}",
                   f"--run_dir={run}", "--steps=1", "--batch_size=2", "--crop_sizes=235x730", "--depth_stride=4",
                   "--log_every=1", "--image_every=0", "--eval_every=0", "--ckpt_every=0", "--precise_bn_batches=0",
                   "--min_free_mb=1", "--val_max_images=1")
    assert rc == 0
    summary = json.load(open(run / "summary.json"))
    assert summary["step"] == 1 and os.path.isfile(run / "best.weights.h5")
    flags_txt = open(run / "flags.txt").read()
    assert "--dataset=kitti" in flags_txt and f"--split_file={kitti['split_file']}" in flags_txt
    assert call_main(train, "--dataset=kitti", f"--data_root={kitti['root']}", f"--split_file={kitti['split_file']}",
                     f"--run_dir={tmp_path / 'r2'}", "--steps=1", "--crop_sizes=400x730", "--min_free_mb=1") == 2
