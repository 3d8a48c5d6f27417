"""Atomic writes: a process SIGKILLed in the middle of writing an output leaves the previous
complete file, or nothing, never a truncated one; a leftover temp file is hidden (`.name.*`) and never matches the
output's pattern, so nothing that lists outputs picks it up.

The real entry points run in a subprocess under tests/crashrun.py, which cuts the finished temp file to half its
size and SIGKILLs the process just before the rename onto the chosen output: on disk exactly a kill in the middle
of writing it. If a writer stopped using temp file + rename, the process would not be killed there (or the old
file would be gone) and the test fails; a log of every rename also shows that each output went through one.
Covered: the `.tflite` export and its --saved_model_dir folder (export/export_tflite.py), evaluate's JSON report and --save_predictions PNGs,
predict's depth / colour PNGs, and fsutil's writers themselves (bytes, JSON, Keras weights).
"""

from __future__ import annotations

import glob
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO, run_command

CRASHRUN = os.path.join(REPO, "tests", "e2e", "crashrun.py")
OLD_PNG = np.full((6, 8), 1234, np.uint16)  # "the previous complete file"


def _crashrun(args, crash, tmp_path, must_die=True):
    log = tmp_path / "replaced.log"
    r = run_command([CRASHRUN, *args], timeout=300, env=dict(LITEDEPTH_CRASH=crash, LITEDEPTH_REPLACE_LOG=log))
    if must_die:
        assert r.returncode == -signal.SIGKILL, f"not killed at {crash} (rc {r.returncode}):\n{r.stderr[-3000:]}"
    replaced = log.read_text().split() if log.exists() else []
    return r, replaced


def _only_hidden_temps(folder, outputs):
    """Everything in `folder` is an expected output or a hidden temp file of one."""
    for name in os.listdir(folder):
        if name not in outputs and not os.path.isdir(os.path.join(folder, name)):
            assert any(name.startswith(f".{o}.") for o in outputs), f"unexpected {name} in {folder}"


def _png_whole(path):
    with Image.open(path) as im:
        im.load()  # raises on a truncated PNG
        return np.asarray(im)


def _write_old_png(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(OLD_PNG).save(path)
    return open(path, "rb").read()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny MAI-layout data set (2 train + 2 val frames) and a random student's weights."""
    import keras

    from litedepth_tf.data.synthetic import generate
    from litedepth_tf.models.student import build_student

    root = tmp_path_factory.mktemp("atomic")
    generate(str(root / "data"), 2, 2, seed=3, workers=1, progress=False)
    keras.utils.set_random_seed(0)
    weights = str(root / "student.weights.h5")
    build_student().save_weights(weights)
    return dict(data=str(root / "data"), weights=weights)


def test_export_killed_mid_write_keeps_the_previous_tflite(tmp_path):
    dest = tmp_path / "model.tflite"
    old = b"TFL3 the previous complete export" * 100
    dest.write_bytes(old)
    sm = tmp_path / "saved_model"
    (sm / "variables").mkdir(parents=True)
    (sm / "saved_model.pb").write_bytes(b"old")
    _, replaced = _crashrun(["export/export_tflite.py", "--quant=fp32", f"--out={dest}", f"--saved_model_dir={sm}"],
                            "replace:model.tflite:1", tmp_path)
    assert replaced[-2:] == [str(sm), str(dest)]  # the SavedModel folder is renamed into place whole, then the .tflite
    assert (sm / "saved_model.pb").stat().st_size > 1000 and not glob.glob(str(tmp_path / ".saved_model.*"))
    assert dest.read_bytes() == old
    temps = [p for p in os.listdir(tmp_path) if p.startswith(".model.tflite.")]
    assert temps and os.path.getsize(tmp_path / temps[0]) > 100_000  # the half-written new export, hidden
    assert glob.glob(str(tmp_path / "*.tflite")) == [str(dest)]
    _only_hidden_temps(tmp_path, ["model.tflite", "replaced.log"])  # (saved_model/ is a folder)


def test_evaluate_killed_writing_its_json_keeps_the_old_report_and_whole_pngs(files, tmp_path):
    out, preds = tmp_path / "eval.json", tmp_path / "preds"
    old = json.dumps({"metrics": {"si_rmse": 0.5}, "note": "the previous report"}).encode()
    out.write_bytes(old)
    _, replaced = _crashrun(["-m", "litedepth_tf.evaluate", f"--weights={files['weights']}",
                             f"--data_root={files['data']}", "--split=local_val", f"--out={out}",
                             f"--save_predictions={preds}"], "replace:eval.json:1", tmp_path)
    assert out.read_bytes() == old
    pngs = sorted(glob.glob(str(preds / "*.png")))
    assert len(pngs) == 2 and set(pngs) <= set(replaced)  # every prediction PNG went through a rename
    for p in pngs:
        assert _png_whole(p).shape == (480, 640)
    _only_hidden_temps(tmp_path, ["eval.json", "replaced.log"])


def test_predict_killed_mid_png_keeps_the_old_file_and_writes_nothing_half(files, tmp_path):
    images = sorted(glob.glob(os.path.join(files["data"], "local_val", "rgb", "*.png")))
    first, second = (os.path.splitext(os.path.basename(p))[0] + ".png" for p in images)
    out = tmp_path / "out"
    old = _write_old_png(str(out / "depth" / second))
    # the first depth PNG of the second image is the 3rd rename matching *.png (depth, color of the first before it)
    _, replaced = _crashrun(["-m", "litedepth_tf.predict", "--weights", files["weights"], "--input",
                             os.path.dirname(images[0]), "--out", str(out)], "replace:*.png:3", tmp_path)
    assert (out / "depth" / second).read_bytes() == old  # the previous file, whole
    assert not (out / "color" / second).exists()  # never written: nothing, rather than a part
    for sub in ("depth", "color"):
        assert str(out / sub / first) in replaced
        assert _png_whole(out / sub / first).shape[:2] == (480, 640)
        assert sorted(os.path.basename(p) for p in glob.glob(str(out / sub / "*.png"))) == \
            sorted({first, second} if sub == "depth" else {first})  # the temp file is not an output
        _only_hidden_temps(out / sub, [first, second])
    # the data pipeline reads OUT/depth as an MAI depth folder: the hidden temp is not a frame
    from litedepth_tf.data.pipeline import list_pairs

    os.symlink(os.path.dirname(images[0]), out / "rgb")
    assert [os.path.basename(d) for _, _, d in list_pairs(str(tmp_path), "out", check=False)] == [first, second]


CALL_WRITER = """
import sys
from litedepth_tf.common import files as fsutil
kind, path = sys.argv[1], sys.argv[2]
if kind == "bytes":
    fsutil.atomic_write_bytes(path, b"NEW" * 100000)
elif kind == "json":
    fsutil.atomic_write_json(path, {"metrics": {"si_rmse": 0.1}, "pad": "x" * 100000})
elif kind == "weights":
    import keras
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64)])
    fsutil.atomic_save_weights(m, path)
"""


@pytest.mark.parametrize("kind,name", [("bytes", "model.tflite"), ("json", "eval.json"),
                                       ("weights", "best.weights.h5")])
def test_fsutil_writer_killed_mid_write_keeps_the_old_file(tmp_path, kind, name):
    dest = tmp_path / name
    old = b"OLD complete file\n"
    dest.write_bytes(old)
    _crashrun(["-c", CALL_WRITER, kind, str(dest)], f"replace:{name}:1", tmp_path)
    assert dest.read_bytes() == old  # the old file, whole
    _only_hidden_temps(tmp_path, [name, "replaced.log"])


def test_fsutil_writer_killed_with_no_previous_file_leaves_nothing(tmp_path):
    _crashrun(["-c", CALL_WRITER, "json", str(tmp_path / "eval.json")], "replace:eval.json:1", tmp_path)
    assert not (tmp_path / "eval.json").exists()
    _only_hidden_temps(tmp_path, ["eval.json", "replaced.log"])


def test_clean_write_replaces_and_leaves_no_temp(tmp_path):
    from litedepth_tf.common import files as fsutil

    dest = tmp_path / "eval.json"
    dest.write_text("old")
    fsutil.atomic_write_json(dest, {"a": 1})
    assert json.loads(dest.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["eval.json"]
