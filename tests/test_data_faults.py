"""Data faults during training (issue 7): a corrupt PNG, a truncated PNG, an all-invalid depth map and a file
deleted while the run is going are reported by name and skipped (on_bad_sample="skip", counted for TensorBoard's
data/skipped_samples) or stop the run with a message naming the file ("fail"); an unwritable or full run
directory is refused before training starts."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
from absl import flags
from PIL import Image

from litedepth_tf import input_pipeline as ip

CROP = ((240, 384),)


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    from litedepth_tf.data.synthetic import generate

    root = tmp_path_factory.mktemp("faults_clean")
    generate(str(root), 6, 2, seed=3, workers=1, progress=False)
    return str(root)


def _bad_copy(clean_root, tmp_path):
    """Copy with three bad training pairs: random bytes, a truncated depth PNG, an all-invalid depth map."""
    root = str(tmp_path / "data")
    shutil.copytree(clean_root, root)
    t = os.path.join(root, "train")
    bad = {"rgb_bytes": os.path.join(t, "rgb", "00001.png"), "truncated": os.path.join(t, "depth", "00002.png"),
           "invalid": os.path.join(t, "depth", "00003.png")}
    with open(bad["rgb_bytes"], "wb") as f:
        f.write(np.random.default_rng(0).bytes(5000))
    data = open(bad["truncated"], "rb").read()
    with open(bad["truncated"], "wb") as f:
        f.write(data[: len(data) // 2])
    Image.fromarray(np.zeros((480, 640), np.uint16)).save(bad["invalid"])
    return root, bad


def _paths_seen(ds, n_batches):
    seen = set()
    for _, b in zip(range(n_batches), ds):
        seen.update(p.decode() for p in b["rgb_path"].numpy())
    return seen


@pytest.mark.parametrize("cache", [False, True])
def test_skip_reports_each_bad_file_and_trains_on_the_rest(clean_root, tmp_path, caplog, cache):
    root, bad = _bad_copy(clean_root, tmp_path)
    counter = ip.BadSampleCounter()
    with caplog.at_level(logging.WARNING, logger="litedepth_tf.input_pipeline"):
        ds = ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP, cache_in_memory=cache,
                             bad_sample_counter=counter)
        seen = _paths_seen(ds, 6)
    good = {os.path.join(root, "train", "rgb", f"0000{i}.png") for i in (0, 4, 5)}
    assert seen == good  # only the three good pairs ever reach a batch
    for path in bad.values():
        assert path in counter.problems, (path, counter.problems)
        assert path in caplog.text
    assert counter.count >= 3 and ip.skipped_samples() >= 3


def test_fail_stops_with_the_file_named(clean_root, tmp_path):
    root, bad = _bad_copy(clean_root, tmp_path)
    with pytest.raises(Exception) as err:  # BadSampleError at build time, or tf's error carrying the message
        ds = ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP, on_bad_sample="fail")
        _paths_seen(ds, 6)
    assert "on_bad_sample=fail" in str(err.value) or any(p in str(err.value) for p in bad.values()), str(err.value)
    assert any(p in str(err.value) for p in bad.values()), str(err.value)


def test_file_deleted_while_running_is_skipped_and_named(clean_root, tmp_path):
    root = str(tmp_path / "data")
    shutil.copytree(clean_root, root)
    counter = ip.BadSampleCounter()
    ds = ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP, bad_sample_counter=counter)
    it = iter(ds)
    next(it)
    gone = os.path.join(root, "train", "depth", "00004.png")
    os.remove(gone)  # deleted after the file list was made and the first batch was read
    seen = set()
    for _, b in zip(range(8), it):
        seen.update(p.decode() for p in b["rgb_path"].numpy())
    assert gone in counter.problems, counter.problems
    assert os.path.join(root, "train", "rgb", "00004.png") not in seen or counter.count >= 1


def _train_flags(**kw):
    from litedepth_tf import train

    fv = train.define_flags(flags.FlagValues())
    args = dict(steps=2, batch_size=2, crop_sizes="240x384", val_split="", log_every=1, image_every=0, ckpt_every=0,
                warmup_steps=1, precise_bn_batches=0, seed=0) | kw
    fv(["train"] + [f"--{k}={v}" for k, v in args.items()])
    return fv


def test_training_skips_bad_samples_and_logs_them(clean_root, tmp_path):
    from litedepth_tf import tb, train

    root, bad = _bad_copy(clean_root, tmp_path)
    run_dir = str(tmp_path / "run")
    summary = train.run(_train_flags(data_root=root, run_dir=run_dir))
    assert summary["step"] == 2
    events = tb.read_events(run_dir)
    assert events["data/skipped_samples"][-1][1] >= 1, events["data/skipped_samples"]


def test_unwritable_or_full_run_dir_is_refused_before_training(clean_root, tmp_path, monkeypatch):
    from litedepth_tf import fsutil, train

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run_dir = str(blocker / "run")  # its parent is a regular file: cannot be created (root included)
    built = []
    monkeypatch.setattr("litedepth_tf.registry.get_builder", lambda name: built.append(name))
    with pytest.raises(fsutil.NotWritableError, match="cannot write into the run directory") as err:
        train.run(_train_flags(data_root=clean_root, run_dir=run_dir))
    assert run_dir in str(err.value) and not built  # refused before any model was built
    with pytest.raises(fsutil.NotWritableError, match="not enough free space") as err:
        train.run(_train_flags(data_root=clean_root, run_dir=str(tmp_path / "ok"), min_free_mb=2**40))
    assert str(tmp_path / "ok") in str(err.value) and not built
