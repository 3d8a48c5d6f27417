"""Data faults during training.

Faults: random bytes instead of a PNG (rejected by the header check when the dataset is built), a PNG whose
header is fine but whose body is garbage, a truncated PNG, an all-invalid depth map (all 0), and a file deleted
while the run is going. With on_bad_sample="skip" each file is named in exactly one warning, never reaches a batch
and is counted (the caller's BadSampleCounter, TensorBoard data/skipped_samples); with "fail"
the error names the file. Both through the streaming path (decode per element) and cache_in_memory. An
unwritable or full run directory is refused by train.run before any data or model work.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from litedepth_tf.data import bad_samples
from litedepth_tf.data import pipeline as ip

CROP = ((240, 384),)
N_TRAIN = 6
# stem -> (folder, what is done to the file). 00000 and 00005 stay good.
FAULTS = {"corrupt": ("00001", "rgb"), "truncated": ("00002", "depth"), "invalid": ("00003", "depth"),
          "garbled": ("00004", "rgb")}
HEADER_FAULTS = ("corrupt",)  # caught by the 33-byte header check when the dataset is built


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    from litedepth_tf.data.synthetic import generate

    root = tmp_path_factory.mktemp("faults_clean")
    generate(str(root), N_TRAIN, 2, seed=3, workers=1, progress=False)
    return str(root)


def _path(root, kind, split="train"):
    stem, folder = FAULTS[kind]
    return os.path.join(root, split, folder, stem + ".png")


def _rgb(root, stem, split="train"):
    return os.path.join(root, split, "rgb", stem + ".png")


def _inject(path, kind):
    rng = np.random.default_rng(0)
    data = open(path, "rb").read()
    if kind == "corrupt":
        data = rng.bytes(5000)
    elif kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "garbled":  # a valid 33-byte header (signature + IHDR) followed by random bytes
        data = data[:33] + rng.bytes(len(data) - 33)
    elif kind == "invalid":
        Image.fromarray(np.zeros((480, 640), np.uint16)).save(path)
        return
    with open(path, "wb") as f:
        f.write(data)


def _bad_copy(clean_root, tmp_path, kinds=tuple(FAULTS), split="train"):
    root = str(tmp_path / "data")
    shutil.copytree(clean_root, root)
    for kind in kinds:
        _inject(_path(root, kind, split), kind)
    return root, {kind: _path(root, kind, split) for kind in kinds}


def _paths(ds, n=None):
    out = []
    for k, b in enumerate(ds):
        if n is not None and k >= n:
            break
        out += [p.decode() for p in b["rgb_path"].numpy()]
    return out


@pytest.mark.parametrize("cache", [False, True], ids=["streaming", "cache_in_memory"])
def test_skip_names_each_bad_file_once_and_counts_it(clean_root, tmp_path, caplog, cache):
    root, bad = _bad_copy(clean_root, tmp_path)
    counter = bad_samples.BadSampleCounter()
    epochs = 3
    with caplog.at_level(logging.WARNING, logger="litedepth_tf.data.pipeline"):
        ds = ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP, cache_in_memory=cache,
                             repeat=epochs, bad_sample_counter=counter)
        seen = _paths(ds)
    good = {_rgb(root, "00000"), _rgb(root, "00005")}
    assert len(seen) == 2 * epochs and set(seen) == good  # every good pair every epoch; no bad one ever
    assert set(counter.problems) == set(bad.values()), counter.problems
    for kind, path in bad.items():
        warnings = [r.getMessage() for r in caplog.records if path in r.getMessage()]
        assert len(warnings) == 1, (kind, warnings)  # one warning per file, not one per epoch
        assert "skipping a bad sample" in warnings[0]
    assert "no valid depth pixel" in counter.problems[bad["invalid"]]
    assert "truncated" in counter.problems[bad["truncated"]]
    # header faults are left out once at build time; the others are met (and counted) once per epoch while
    # streaming, once while filling the cache
    n_stream = len(FAULTS) - len(HEADER_FAULTS)
    expected = len(HEADER_FAULTS) + (n_stream if cache else n_stream * epochs)
    assert counter.count == expected, (counter.count, expected)


def test_skip_in_evaluation_keeps_file_order(clean_root, tmp_path):
    root, bad = _bad_copy(clean_root, tmp_path)
    counter = bad_samples.BadSampleCounter()
    ds = ip.make_dataset(root, "train", 1, training=False, bad_sample_counter=counter)
    assert _paths(ds) == [_rgb(root, "00000"), _rgb(root, "00005")]
    assert set(counter.problems) == set(bad.values()) and counter.count == len(FAULTS)


def _fail_message(root, cache):
    """The error of on_bad_sample="fail": BadSampleError at build time, or TF's error from inside the graph."""
    try:
        ds = ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP, cache_in_memory=cache,
                             on_bad_sample="fail", repeat=1)
        _paths(ds)
    except bad_samples.BadSampleError as err:
        return "build", str(err)
    except tf.errors.OpError as err:
        clean = bad_samples.bad_sample_error(err)
        assert clean is not None, str(err)[:2000]  # our message travels inside TF's error
        return "graph", str(clean)
    pytest.fail("on_bad_sample=fail did not raise")


@pytest.mark.parametrize("cache", [False, True], ids=["streaming", "cache_in_memory"])
@pytest.mark.parametrize("kind", list(FAULTS))
def test_fail_names_the_file(clean_root, tmp_path, kind, cache):
    root, bad = _bad_copy(clean_root, tmp_path, kinds=(kind,))
    where, msg = _fail_message(root, cache)
    assert bad[kind] in msg and "on_bad_sample=fail" in msg, msg
    others = [_rgb(root, s) for s in ("00000", "00005")]
    assert not any(p in msg for p in others), msg
    assert where == ("build" if cache or kind in HEADER_FAULTS else "graph"), (where, msg)


def test_every_sample_bad_stops_instead_of_spinning(clean_root, tmp_path):
    root = str(tmp_path / "data")
    shutil.copytree(clean_root, root)
    for i in range(N_TRAIN):
        _inject(os.path.join(root, "train", "depth", f"{i:05d}.png"), "truncated")
    with pytest.raises(tf.errors.OpError) as err:
        _paths(ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP), 5)
    msg = str(bad_samples.bad_sample_error(err.value))
    assert f"every one of the {N_TRAIN} samples" in msg, str(err.value)[:2000]


def _streaming(root, counter=None, mode="skip"):
    # one parallel call and no prefetch: at most a couple of elements are read ahead of the consumer
    return ip.make_dataset(root, "train", 1, training=True, seed=0, crop_sizes=CROP, deterministic=True,
                           num_parallel_calls=1, prefetch=0, on_bad_sample=mode, bad_sample_counter=counter)


def test_file_deleted_while_running(clean_root, tmp_path):
    root = str(tmp_path / "data")
    shutil.copytree(clean_root, root)
    gone, gone_rgb = os.path.join(root, "train", "depth", "00004.png"), _rgb(root, "00004")
    counter = bad_samples.BadSampleCounter()
    it = iter(_streaming(root, counter))
    next(it)  # the file list exists and the pipeline runs
    os.remove(gone)
    seen = [p for _, b in zip(range(3 * N_TRAIN), it) for p in (q.decode() for q in b["rgb_path"].numpy())]
    assert gone_rgb not in seen[3:], seen  # a few elements may have been read before the deletion
    assert len(set(seen[3:])) == N_TRAIN - 1 and set(counter.problems) == {gone}, counter.problems
    assert "No such file" in counter.problems[gone], counter.problems
    assert counter.count >= 2  # met again in every later epoch, counted each time (warned once)

    shutil.copy(os.path.join(clean_root, "train", "depth", "00004.png"), gone)
    it = iter(_streaming(root, mode="fail"))
    next(it)
    os.remove(gone)
    with pytest.raises(tf.errors.OpError) as err:
        for _ in range(3 * N_TRAIN):
            next(it)
    msg = str(bad_samples.bad_sample_error(err.value))
    assert gone in msg and "on_bad_sample=fail" in msg, str(err.value)[:2000]


def test_file_deleted_after_caching_does_not_matter(clean_root, tmp_path):
    root = str(tmp_path / "data")
    shutil.copytree(clean_root, root)
    counter = bad_samples.BadSampleCounter()
    ds = ip.make_dataset(root, "train", 2, training=True, seed=0, crop_sizes=CROP, cache_in_memory=True,
                         bad_sample_counter=counter)
    os.remove(os.path.join(root, "train", "depth", "00004.png"))  # decoded into memory already
    assert _rgb(root, "00004") in _paths(ds, 2 * N_TRAIN) and counter.count == 0


# ------------------------------------------------------------------------------------------------ training


def _train_flags(**kw):
    from litedepth_tf import train

    fv = train.define_flags(flags.FlagValues())
    args = dict(steps=3, batch_size=2, crop_sizes="240x384", val_split="", log_every=1, image_every=0, ckpt_every=0,
                warmup_steps=1, precise_bn_batches=0, seed=0) | kw
    fv(["train"] + [f"--{k}={v}" for k, v in args.items()])
    return fv


def test_training_skips_bad_samples_names_and_logs_them(clean_root, tmp_path, caplog):
    from litedepth_tf import train
    from litedepth_tf.training import tensorboard as tb

    root, bad = _bad_copy(clean_root, tmp_path, kinds=("corrupt", "truncated"))
    run_dir = str(tmp_path / "run")
    # 4 good pairs, batch 2: 3 steps read past the first epoch, so the truncated file is met
    with caplog.at_level(logging.WARNING, logger="litedepth_tf.data.pipeline"):
        summary = train.run(_train_flags(data_root=root, run_dir=run_dir))
    assert summary["step"] == 3
    for path in bad.values():
        assert path in caplog.text, caplog.text[-3000:]
    skipped = tb.read_events(run_dir)["data/skipped_samples"]
    assert [s for s, _ in skipped] == [1, 2, 3], skipped
    assert skipped[0][1] >= 1 and skipped[-1][1] >= 2, skipped  # the header reject from the start, then more


def test_training_fail_mode_stops_naming_the_file(clean_root, tmp_path):
    from litedepth_tf import train

    root, bad = _bad_copy(clean_root, tmp_path, kinds=("truncated",))
    with pytest.raises(bad_samples.BadSampleError) as err:  # one line, not TensorFlow's op trace
        train.run(_train_flags(data_root=root, run_dir=str(tmp_path / "run"), on_bad_sample="fail"))
    msg = str(err.value)
    assert bad["truncated"] in msg and "on_bad_sample=fail" in msg and "EagerPyFunc" not in msg, msg


# ------------------------------------------------------------------------------------------------ run dir


@pytest.fixture
def no_work(monkeypatch):
    """Records any model build or dataset creation (none may happen before the run directory is checked)."""
    work = []
    monkeypatch.setattr("litedepth_tf.models.presets.get_builder", lambda *a, **k: work.append(("model", a)))
    monkeypatch.setattr(ip, "make_dataset", lambda *a, **k: work.append(("data", a)))
    return work


def test_unwritable_run_dir_is_refused_before_training(clean_root, tmp_path, no_work):
    from litedepth_tf import train
    from litedepth_tf.common import files as fsutil

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run_dir = str(blocker / "run")  # its parent is a regular file: cannot be created (root included)
    t0 = time.perf_counter()
    with pytest.raises(fsutil.NotWritableError, match="cannot write into the run directory") as err:
        train.run(_train_flags(data_root=clean_root, run_dir=run_dir))
    assert run_dir in str(err.value) and not no_work and time.perf_counter() - t0 < 5


def test_full_disk_is_refused_before_training(clean_root, tmp_path, no_work, monkeypatch):
    import collections

    from litedepth_tf import train
    from litedepth_tf.common import files as fsutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda p: usage(10 * 2**30, 10 * 2**30 - 50 * 2**20, 50 * 2**20))
    run_dir = str(tmp_path / "run")
    with pytest.raises(fsutil.NotWritableError, match="not enough free space") as err:
        train.run(_train_flags(data_root=clean_root, run_dir=run_dir, min_free_mb=200))
    msg = str(err.value)
    assert run_dir in msg and "50 MiB free" in msg and "200 MiB needed" in msg and not no_work, msg
    assert not [n for n in os.listdir(run_dir) if n.startswith(".write_probe")]  # the probe is removed
    assert fsutil.check_writable(run_dir, 10 * 2**20) == run_dir  # enough space: passes
