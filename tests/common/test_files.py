"""Atomic writes: a process SIGKILLed in the middle of writing an output leaves the previous
complete file, or nothing, never a truncated one; a leftover temp file is hidden (`.name.*`) and never matches the
output's pattern, so nothing that lists outputs picks it up.

The real entry points run in a subprocess under tests/crashrun.py, which cuts the finished temp file to half its
size and SIGKILLs the process just before the rename onto the chosen output: on disk exactly a kill in the middle
of writing it. If a writer stopped using temp file + rename, the process would not be killed there (or the old
file would be gone) and the test fails; a log of every rename also shows that each output went through one.
Covered: the `.tflite` export and its --saved_model_dir folder (export/export_tflite.py), evaluate's JSON report and --save_predictions PNGs,
predict's depth / colour PNGs, and fsutil's writers themselves (bytes, JSON, Keras weights).

Full disk (the last section): the same writers, and evaluate / predict / the .tflite export, with ENOSPC injected
where a full disk shows up for them (`tests.helpers.fail_writes`: the fsync of the temp file; a rename that fails
too): one `WriteError` line naming the file, the error and what is intact, exit 2 for the commands, the previous
file unchanged and no temp file left. The trainer's writes: tests/training/test_faults.py; a real full file
system: tests/e2e/test_faults.py.

Permissions (the last section): every writer gives a new file the mode a plain `open()` gives one (0666 minus the
umask, tried with 022, 077 and 002), a replaced file keeps its permission bits, and predict's outputs under
umask 022 are 0644.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import signal
import stat

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO, call_main, fail_writes, run_command

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


# ------------------------------------------------------------------------------------------------ full disk


def _no_temps(folder):
    hidden = [n for _, _, fs in os.walk(folder) for n in fs if n.startswith(".")]
    assert not hidden, hidden


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    lines = [ln for ln in err if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in "\n".join(err), err
    return lines[0]


@pytest.mark.parametrize("kind,name", [("bytes", "model.tflite"), ("json", "eval.json"),
                                       ("weights", "best.weights.h5")])
@pytest.mark.parametrize("previous", [True, False])
def test_fsutil_writer_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, kind, name,
                                                                            previous):
    import keras

    from litedepth_tf.common import cli
    from litedepth_tf.common import files as fsutil

    dest = tmp_path / name
    if previous:
        dest.write_bytes(b"OLD complete file\n")
    failed = fail_writes(monkeypatch, name)
    with pytest.raises(fsutil.WriteError) as err:
        if kind == "bytes":
            fsutil.atomic_write_bytes(dest, b"NEW" * 1000)
        elif kind == "json":
            fsutil.atomic_write_json(dest, {"a": 1})
        else:
            fsutil.atomic_save_weights(keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)]), dest)
    intact = "its previous version is unchanged" if previous else "no file was written"
    assert str(err.value) == f"cannot write {dest}: No space left on device (ENOSPC) ({intact})"
    assert isinstance(err.value, cli.InputError) and err.value.errno == errno.ENOSPC
    assert failed and not os.path.exists(failed[0])  # the temp file is removed
    assert os.listdir(tmp_path) == ([name] if previous else [])
    if previous:
        assert dest.read_bytes() == b"OLD complete file\n"


def test_a_failed_rename_is_a_write_error_too(tmp_path, monkeypatch):
    from litedepth_tf.common import files as fsutil

    def replace(src, dst):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(fsutil.WriteError, match=r"cannot write .*eval.json: Input/output error \(EIO\) \(no file"):
        fsutil.atomic_write_json(tmp_path / "eval.json", {"a": 1})
    assert os.listdir(tmp_path) == []


def test_evaluate_on_a_full_disk_stops_at_a_prediction_png_with_one_line(files, tmp_path, monkeypatch, capsys):
    from litedepth_tf import evaluate

    out, preds = tmp_path / "eval.json", tmp_path / "preds"
    out.write_text("the previous report")
    fail_writes(monkeypatch, "*.png", nth=2)  # the second prediction
    rc = call_main(evaluate, "--weights", files["weights"], "--data_root", files["data"], "--split=local_val",
                   "--nobaseline", "--out", out, "--save_predictions", preds)
    line = _one_error_line(capsys)
    assert rc == 2
    written = sorted(glob.glob(str(preds / "*.png")))
    assert len(written) == 1 and _png_whole(written[0]).shape == (480, 640)  # the first, whole
    assert line.startswith(f"error: cannot write {preds}/") and "No space left on device (ENOSPC)" in line
    assert "the prediction PNGs written before it are complete" in line
    assert f"--out {out} was not written (its previous version is unchanged)" in line, line
    assert out.read_text() == "the previous report"
    _no_temps(tmp_path)


def test_evaluate_on_a_full_disk_at_its_report_keeps_the_old_one(files, tmp_path, monkeypatch, capsys):
    from litedepth_tf import evaluate

    out = tmp_path / "eval.json"
    out.write_text("the previous report")
    fail_writes(monkeypatch, "eval.json")
    rc = call_main(evaluate, "--weights", files["weights"], "--data_root", files["data"], "--split=local_val",
                   "--nobaseline", "--max_images=1", "--out", out)
    assert rc == 2 and _one_error_line(capsys) == (f"error: cannot write {out}: No space left on device (ENOSPC) "
                                                   "(its previous version is unchanged)")
    assert out.read_text() == "the previous report"
    _no_temps(tmp_path)


def test_predict_on_a_full_disk_stops_at_the_first_failed_png_with_one_line(files, tmp_path, monkeypatch, capsys):
    from litedepth_tf import predict

    images = sorted(glob.glob(os.path.join(files["data"], "local_val", "rgb", "*.png")))
    out = tmp_path / "out"
    fail_writes(monkeypatch, "*.png", nth=2)  # the first image's colour map (after its depth PNG)
    # --workers 0: one file after another, so "the 2nd PNG" is the first image's colour map, whatever the timing
    rc = call_main(predict, "--weights", files["weights"], "--input", os.path.dirname(images[0]), "--out", out,
                   "--workers", 0)
    line = _one_error_line(capsys)
    first = os.path.basename(images[0])
    assert rc == 2
    assert line == (f"error: cannot write {out}/color/{first}: No space left on device (ENOSPC) (no file was "
                    f"written); the files written before it in {out} are complete"), line
    assert os.listdir(out / "depth") == [first] and _png_whole(out / "depth" / first).shape == (480, 640)
    assert os.listdir(out / "color") == []  # stopped there: the second image was not tried
    _no_temps(tmp_path)


def test_tflite_export_on_a_full_disk_keeps_the_previous_model(tmp_path, monkeypatch):
    import keras

    from litedepth_tf.common import files as fsutil
    from litedepth_tf.tflite.export import export_tflite

    dest = tmp_path / "model.tflite"
    dest.write_bytes(b"TFL3 the previous complete export")
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1)])
    fail_writes(monkeypatch, "model.tflite")
    with pytest.raises(fsutil.WriteError) as err:
        export_tflite(model, str(dest), "fp32")
    assert str(err.value) == f"cannot write {dest}: No space left on device (ENOSPC) (its previous version is " \
                             "unchanged)"
    assert dest.read_bytes() == b"TFL3 the previous complete export" and os.listdir(tmp_path) == ["model.tflite"]


# ------------------------------------------------------------------------------------------------ permissions


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _plain_open_mode(folder) -> int:
    """The mode `open(..., "w")` gives a new file in `folder` now (the umask, and a default ACL if any)."""
    probe = os.path.join(folder, "plain_open_probe")
    with open(probe, "w"):
        pass
    mode = _mode(probe)
    os.remove(probe)
    return mode


def _write_each_way(folder) -> dict:
    """One new file through each writer of fsutil (and the two that go through it: PNGs, .tflite) -> {kind: path}."""
    import keras

    from litedepth_tf.common import files as fsutil
    from litedepth_tf.common.images import write_png_fast
    from litedepth_tf.tflite.export import export_tflite

    paths = {k: os.path.join(folder, n) for k, n in [
        ("bytes", "a.bin"), ("text", "a.txt"), ("json", "a.json"), ("weights", "a.weights.h5"), ("path", "b.bin"),
        ("staged", "c.bin"), ("png", "d.png"), ("tflite", "e.tflite")]}
    fsutil.atomic_write_bytes(paths["bytes"], b"x")
    fsutil.atomic_write_text(paths["text"], "x")
    fsutil.atomic_write_json(paths["json"], {"a": 1})
    fsutil.atomic_save_weights(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), paths["weights"])
    with fsutil.atomic_path(paths["path"]) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"x")
    fsutil.commit_staged(fsutil.stage_bytes(paths["staged"], b"x"), paths["staged"])
    write_png_fast(paths["png"], np.zeros((4, 6), np.uint16))
    export_tflite(keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1)]), paths["tflite"])
    return paths


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_every_writer_gives_a_new_file_the_mode_of_a_plain_open(tmp_path, mask):
    with _umask(mask):
        expected = _plain_open_mode(tmp_path)
        paths = _write_each_way(str(tmp_path))
    assert expected == 0o666 & ~mask  # (no default ACL on the test's temp folder)
    assert {k: oct(_mode(p)) for k, p in paths.items()} == {k: oct(expected) for k in paths}
    _no_temps(tmp_path)


def test_a_replaced_file_keeps_its_permission_bits_as_writing_in_place_would(tmp_path):
    from litedepth_tf.common import files as fsutil

    dest = tmp_path / "eval.json"
    dest.write_text("old")
    os.chmod(dest, 0o640)
    with _umask(0o077):
        fsutil.atomic_write_json(dest, {"a": 1})
        fsutil.commit_staged(fsutil.stage_bytes(dest, b"{}"), dest)
    assert _mode(dest) == 0o640 and dest.read_text() == "{}"
    with open(dest, "w"):  # what a plain open() over it does: the same
        pass
    assert _mode(dest) == 0o640


@pytest.mark.parametrize("workers", [0, 2])
def test_predict_outputs_are_readable_by_the_group_and_others_under_umask_022(files, tmp_path, workers):
    from litedepth_tf import predict

    images = os.path.join(files["data"], "local_val", "rgb")
    out = tmp_path / "out"
    with _umask(0o022):
        assert call_main(predict, "--weights", files["weights"], "--input", images, "--out", out, "--side_by_side",
                         "--workers", workers) == 0
    written = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert len(written) == 2 * 3 and {oct(_mode(p)) for p in written} == {oct(0o644)}
