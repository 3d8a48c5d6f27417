"""Data set presets (data.datasets): the size rules, split files, listing each layout, decoding and scaling
through tf.data (NYU JPEG, KITTI's KB crop and sparse x256 ground truth, DIODE converted), per-sample intrinsics,
and the bad-input messages (missing split-file line, wrong frame size, implausible depth scale)."""

import os

import numpy as np
import pytest
from PIL import Image

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.sizes import network_size
from litedepth_tf.data import datasets, fixtures
from litedepth_tf.data.augment import CROP_SIZES
from litedepth_tf.data.bad_samples import BadSampleError
from litedepth_tf.data.check import scale_problem
from litedepth_tf.data.pipeline import list_pairs, make_dataset


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    return fixtures.write_nyu(tmp_path_factory.mktemp("nyu"), n=3, seed=1)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return fixtures.write_kitti(tmp_path_factory.mktemp("kitti"), n=3, seed=2, none_lines=1)


def test_size_rules():
    assert network_size((480, 640)) == (128, 160) and datasets.MAI2022.crop_sizes == CROP_SIZES
    assert datasets.MAI2022.crop_network_sizes == ((64, 96), (96, 128), (128, 160))
    assert datasets.KITTI.net_size == (96, 320) and datasets.DIODE.net_size == (192, 256)
    for p in datasets.PRESETS.values():
        if p.frame_size is None:
            continue
        assert p.crop_sizes[-1] == p.frame_size  # the paper's third crop is the whole frame
        for crop, net in zip(p.crop_sizes, p.crop_network_sizes):
            assert crop[0] <= p.frame_size[0] and crop[1] <= p.frame_size[1]
            assert net[0] % 32 == 0 and net[1] % 32 == 0 and net[0] <= p.net_size[0] and net[1] <= p.net_size[1]
    # NYU calibration with fy where it belongs (the toolbox's matrix has it in the second row's first column)
    assert datasets.NYU.intrinsics[:2] == (518.8579, 519.4696) and datasets.NYU.intrinsics[2] > 300


def test_overrides_and_bad_values():
    p = datasets.get_preset("folder", depth_scale=5000, max_depth=8, intrinsics=["500", "500", "320", "240"])
    assert (p.depth_scale, p.max_depth, p.intrinsics) == (5000.0, 8.0, (500.0, 500.0, 320.0, 240.0))
    with pytest.raises(InputError, match="--dataset must be one of"):
        datasets.get_preset("nyuv3")
    with pytest.raises(InputError, match="--depth_scale must be > 0"):
        datasets.get_preset("folder", depth_scale=0)


def test_nyu_layout_and_split_file(nyu):
    by_folder = datasets.list_samples(datasets.NYU, nyu["root"], "sync")
    by_file = datasets.list_samples(datasets.NYU, nyu["base"], None, nyu["split_file"])  # lines start with '/'
    assert [p[1:] for p in by_folder.pairs] == [p[1:] for p in by_file.pairs] and len(by_file.pairs) == 3
    assert by_file.focals == [518.8579] * 3 and all(p[1].endswith(".jpg") for p in by_file.pairs)


def test_split_file_errors_name_the_file_and_line(nyu, tmp_path):
    lines = open(nyu["split_file"]).read().splitlines()
    bad = tmp_path / "nyu_bad.txt"
    bad.write_text("# header\n" + lines[0] + "\n" + lines[1].replace("rgb_00001", "rgb_09999") + "\n")
    with pytest.raises(datasets.DatasetError, match=r"nyu_bad\.txt:3: rgb file .*rgb_09999\.jpg not found"):
        datasets.list_samples(datasets.NYU, nyu["base"], None, str(bad))
    bad.write_text(lines[0] + " extra field\n")
    with pytest.raises(datasets.DatasetError, match=r"nyu_bad\.txt:1: expected 'rgb depth \[focal\]'"):
        datasets.list_samples(datasets.NYU, nyu["base"], None, str(bad))
    with pytest.raises(datasets.DatasetError, match="no_such.txt does not exist"):
        datasets.list_samples(datasets.NYU, nyu["base"], None, str(tmp_path / "no_such.txt"))


def test_nyu_decodes_jpeg_and_scales_by_1000(nyu):
    ds = make_dataset(nyu["base"], None, 1, training=False, dataset="nyu", split_file=nyu["split_file"])
    pairs = list_pairs(nyu["base"], None, dataset="nyu", split_file=nyu["split_file"])
    for batch, (_, rgb, dep) in zip(ds, pairs):
        assert batch["image"].shape == (1, 480, 640, 3)
        raw = np.asarray(Image.open(dep)).astype(np.float32)
        want = np.where(raw / 1000.0 > 10.0, 0.0, raw / np.float32(1000.0))
        np.testing.assert_array_equal(batch["depth"].numpy()[0, ..., 0], want)
        jpg = np.asarray(Image.open(rgb).convert("RGB"), np.float32)
        diff = np.abs(batch["image"].numpy()[0] - jpg)  # TF's and PIL's JPEG decoders round / upsample chroma
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 3.0  # differently, by a few levels at edges
        np.testing.assert_allclose(batch["intrinsics"].numpy()[0], [518.8579, 518.8579, 325.5824, 253.7362],
                                   rtol=1e-6)


def test_kitti_kb_crop_sparse_gt_and_per_sample_principal_point(kitti):
    listing = datasets.list_samples(datasets.KITTI, kitti["root"], None, kitti["split_file"])
    assert len(listing.pairs) == 3 and listing.skipped_none == 1  # the `None` line: skipped and counted
    ds = make_dataset(kitti["root"], None, 1, training=False, dataset="kitti", split_file=kitti["split_file"])
    seen = set()
    for batch, (_, rgb, dep) in zip(ds, listing.pairs):
        raw = np.asarray(Image.open(dep)).astype(np.float32)
        h, w = raw.shape
        top, left = h - 352, (w - 1216) // 2
        np.testing.assert_array_equal(batch["depth"].numpy()[0, ..., 0], raw[top:top + 352, left:left + 1216] / 256.0)
        img = np.asarray(Image.open(rgb), np.float32)[top:top + 352, left:left + 1216]
        np.testing.assert_array_equal(batch["image"].numpy()[0], img)
        valid = float(batch["valid"].numpy().mean())
        assert 0.01 < valid < 0.15  # sparse, and not dropped as "no valid depth"
        fx, fy, cx, cy = batch["intrinsics"].numpy()[0]
        assert (fx, fy) == pytest.approx((721.5377, 721.5377)) and (cx, cy) == pytest.approx(
            (609.5593 - left, 172.854 - top))
        seen.add((h, w))
    assert len(seen) == 3  # three raw sizes, one 352x1216 frame each


def test_kitti_folder_listing_matches_the_split_file(kitti):
    listing = datasets.list_samples(datasets.KITTI, kitti["root"], "data_depth_annotated/train")
    by_file = datasets.list_samples(datasets.KITTI, kitti["root"], None, kitti["split_file"])
    assert [p[1:] for p in listing.pairs] == [p[1:] for p in by_file.pairs]


def test_kitti_training_batches(kitti):
    ds = make_dataset(kitti["root"], None, 2, training=True, seed=0, deterministic=True, dataset="kitti",
                      split_file=kitti["split_file"], depth_stride=2)
    sizes = dict(zip(datasets.KITTI.crop_sizes, datasets.KITTI.crop_network_sizes))
    for b in ds.take(3):
        ch, cw = b["depth"].shape[1] * 2, b["depth"].shape[2] * 2
        crop = next(c for c in sizes if (c[0] + 1) // 2 * 2 == ch and (c[1] + 1) // 2 * 2 == cw)
        assert tuple(b["image"].shape[1:3]) == sizes[crop]
        assert float(b["depth"].numpy().max()) <= 80.0 and np.isfinite(b["image"].numpy()).all()


def test_diode_native_points_to_the_converter(tmp_path):
    fixtures.write_diode(tmp_path, n=1, hw=(96, 128))
    with pytest.raises(datasets.DatasetError, match="litedepth_tf.convert --dataset diode"):
        datasets.list_samples(datasets.DIODE, str(tmp_path), "val")
    with pytest.raises(datasets.DatasetError, match="convert once"):
        datasets.list_samples(datasets.get_preset("folder", depth_format="npy"), str(tmp_path), "val")


def test_a_frame_of_the_wrong_size_is_named(nyu, tmp_path):
    base = tmp_path / "sync" / "scene"
    base.mkdir(parents=True)
    for name in ("rgb_00000.jpg", "sync_depth_00000.png"):
        src = os.path.join(nyu["root"], "sync", "kitchen_0028b", name)
        Image.open(src).crop((0, 0, 600, 480)).save(base / name)
    with pytest.raises(BadSampleError, match=r"sync_depth_00000\.png: size 480x600, expected 480x640"):
        make_dataset(str(tmp_path), "sync", 1, training=False, dataset="nyu", on_bad_sample="fail")
    report = datasets.check_dataset(datasets.NYU, str(tmp_path), ["sync"], progress=False)
    assert any("size 480x600, expected 480x640" in e for e in report["sync"]["errors"])


def test_folder_preset_takes_the_frame_size_from_the_files(tmp_path):
    for sub in ("rgb", "depth"):
        (tmp_path / "s" / sub).mkdir(parents=True)
    rgb, depth = fixtures.frame(0, 0, (96, 128), max_depth_m=4.0)
    Image.fromarray(rgb).save(tmp_path / "s" / "rgb" / "a.png")
    Image.fromarray(fixtures.to_uint16(depth, 5000.0)).save(tmp_path / "s" / "depth" / "a.png")
    preset = datasets.get_preset("folder", depth_scale=5000)
    b = next(iter(make_dataset(str(tmp_path), "s", 1, training=False, dataset=preset)))
    assert b["depth"].shape == (1, 96, 128, 1)
    np.testing.assert_allclose(b["depth"].numpy()[0, ..., 0], fixtures.to_uint16(depth, 5000.0) / 5000.0, rtol=1e-6)
    fx, fy, cx, cy = b["intrinsics"].numpy()[0]  # no --intrinsics: MAI's field of view scaled to the frame
    assert fx == pytest.approx(518.8579 * 128 / 640) and (cx, cy) == pytest.approx((63.5, 47.5))


def test_scale_check_names_the_likely_scale():
    rng = np.random.default_rng(0)
    kitti_raw = np.round(rng.uniform(2, 80, 5000) * 256).astype(np.int64)  # KITTI's x256 values
    hist = np.bincount(kitti_raw, minlength=65536)
    assert scale_problem(hist, 256.0, 80.0, datasets.KITTI.expect_p999) is None
    msg = scale_problem(hist, 1000.0, 80.0, datasets.KITTI.expect_p999, "x/kitti", "kitti")
    assert "x/kitti" in msg and "--depth_scale=256" in msg and "expected 25..90 m" in msg
    nyu_raw = np.round(rng.uniform(0.5, 9.5, 5000) * 1000).astype(np.int64)
    hist = np.bincount(nyu_raw, minlength=65536)
    assert scale_problem(hist, 1000.0, 10.0, datasets.NYU.expect_p999) is None
    msg = scale_problem(hist, 256.0, 10.0, datasets.NYU.expect_p999, "x/nyu", "nyu")
    assert "beyond the 10 m range" in msg and "--depth_scale=1000" in msg


def test_check_dataset_sparse_kitti_is_fine_and_a_wrong_scale_is_an_error(kitti):
    ok = datasets.check_dataset(datasets.KITTI, kitti["root"], split_file=kitti["split_file"], progress=False)
    entry = ok[os.path.basename(kitti["split_file"])]
    assert entry["errors"] == [] and entry["warnings"] == [] and entry["pairs"] == 3 and entry["skipped_none"] == 1
    wrong = datasets.check_dataset(datasets.get_preset("kitti", depth_scale=1000), kitti["root"],
                                   split_file=kitti["split_file"], progress=False)
    errors = wrong[os.path.basename(kitti["split_file"])]["errors"]
    assert len(errors) == 1 and "--depth_scale=256" in errors[0]
