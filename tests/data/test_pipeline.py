"""make_dataset: contract shapes / units, pairing errors, malformed files, custom splits and file lists."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from litedepth_tf.common.constants import MAI_INTRINSICS
from litedepth_tf.data.synthetic import render_frame
from litedepth_tf.data.pipeline import CROP_SIZES, make_dataset

N = 4


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    for split, n in (("train", N), ("my_val", 2)):
        for sub in ("rgb", "depth"):
            os.makedirs(root / split / sub)
        for i in range(n):
            rgb, d = render_frame(3, i, split)
            if split == "my_val" and i == 0:
                d[:10, :10] = 45000  # beyond 40 m -> invalid
            Image.fromarray(rgb).save(root / split / "rgb" / f"{i:05d}.png", compress_level=1)
            Image.fromarray(d).save(root / split / "depth" / f"{i:05d}.png", compress_level=1)
    return root


def copy_split(root, tmp_path, name="x"):
    dst = tmp_path / name
    shutil.copytree(root / "train", dst)
    return dst


def test_training_contract(root):
    ds = make_dataset(str(root), "train", 2, training=True, seed=0, deterministic=True)
    sizes = set()
    for b in ds.take(6):
        b = {k: v.numpy() for k, v in b.items()}
        _, ch, cw, _ = b["depth"].shape
        sizes.add((ch, cw))
        assert (ch, cw) in CROP_SIZES
        assert b["image"].shape == (2, ch * 128 // 480, cw * 160 // 640, 3) and b["image"].dtype == np.float32
        assert b["valid"].shape == (2, ch, cw, 1) and b["valid"].dtype == np.float32
        assert b["intrinsics"].shape == (2, 4) and b["rgb_path"].shape == (2,)
        assert np.isfinite(b["image"]).all() and np.isfinite(b["depth"]).all()
        assert 0 <= b["image"].min() and b["image"].max() <= 255 and b["image"].max() > 20
        assert 0 <= b["depth"].min() and b["depth"].max() <= 40
        assert (b["depth"] > 0).mean() > 0.2
        np.testing.assert_array_equal(b["valid"], (b["depth"] > 0).astype(np.float32))
        np.testing.assert_allclose(b["intrinsics"][:, :2], np.tile(MAI_INTRINSICS[:2], (2, 1)))
    assert len(sizes) >= 2  # one size per batch, several sizes over batches


def test_single_crop_size_option(root):
    ds = make_dataset(str(root), "train", 2, training=True, seed=0, crop_sizes=((240, 384),))
    b = next(iter(ds))
    assert b["image"].shape == (2, 64, 96, 3) and b["depth"].shape == (2, 240, 384, 1)


def test_evaluation_full_frames_custom_split(root):
    ds = make_dataset(str(root), "my_val", 2, training=False)
    batches = list(ds)
    assert len(batches) == 1
    b = {k: v.numpy() for k, v in batches[0].items()}
    assert b["image"].shape == (2, 480, 640, 3) and b["depth"].shape == (2, 480, 640, 1)
    np.testing.assert_allclose(b["intrinsics"], np.tile(MAI_INTRINSICS, (2, 1)))
    d_png = np.asarray(Image.open(root / "my_val" / "depth" / "00000.png")).astype(np.float32)
    exp = np.where(d_png > 40000, 0, d_png / 1000.0)
    np.testing.assert_allclose(b["depth"][0, ..., 0], exp, rtol=1e-6)
    assert (b["depth"][0, :10, :10] == 0).all()
    rgb_png = np.asarray(Image.open(root / "my_val" / "rgb" / "00000.png")).astype(np.float32)
    np.testing.assert_array_equal(b["image"][0], rgb_png)
    assert b["rgb_path"][1].decode().endswith(os.path.join("my_val", "rgb", "00001.png"))


def test_missing_depth_names_first_mismatch(root, tmp_path):
    d = copy_split(root, tmp_path)
    os.remove(d / "depth" / "00001.png")
    with pytest.raises(ValueError, match="00001"):
        make_dataset(str(tmp_path), "x", 2, training=True)


def test_unequal_stems(root, tmp_path):
    d = copy_split(root, tmp_path)
    os.rename(d / "depth" / "00002.png", d / "depth" / "00009.png")
    with pytest.raises(ValueError, match="00002"):
        make_dataset(str(tmp_path), "x", 2, training=False)


def test_every_malformed_file_named(root, tmp_path):
    d = copy_split(root, tmp_path)
    Image.fromarray(np.zeros((480, 640), np.uint8)).save(d / "depth" / "00000.png")  # 8-bit depth
    (d / "rgb" / "00002.png").write_bytes(b"not a png at all")  # corrupt
    Image.fromarray(np.zeros((240, 320, 3), np.uint8)).save(d / "rgb" / "00003.png")  # size mismatch
    with pytest.raises(ValueError) as e:  # the default on_bad_sample="skip" drops them instead: test_data_faults
        make_dataset(str(tmp_path), "x", 2, training=True, on_bad_sample="fail")
    msg = str(e.value)
    for f in ("depth/00000.png", "rgb/00002.png", "rgb/00003.png"):
        assert os.path.join(*f.split("/")) in msg, msg
    assert "rgb/00001.png" not in msg


def test_file_list_stems_and_pairs(root, tmp_path):
    stems = tmp_path / "stems.txt"
    stems.write_text("# subset\n00002\n00000.png\n")
    ds = make_dataset(str(root), "train", 2, training=False, file_list=str(stems))
    paths = [p.decode() for b in ds for p in b["rgb_path"].numpy()]
    assert [os.path.basename(p) for p in paths] == ["00002.png", "00000.png"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"rgb/00001.png depth/00001.png\n{root}/train/rgb/00003.png {root}/train/depth/00003.png\n")
    # deterministic=True: out of order, an element of epoch 2 may overtake one of epoch 1 (2-sample list).
    ds = make_dataset(str(root), "train", 2, training=True, seed=1, file_list=str(pairs), deterministic=True)
    b = next(iter(ds))
    assert sorted(os.path.basename(p.decode()) for p in b["rgb_path"].numpy()) == ["00001.png", "00003.png"]
    bad = tmp_path / "bad.txt"
    bad.write_text("00001\n00077\n00078\n")
    with pytest.raises(ValueError, match="00077(.|\n)*00078"):
        make_dataset(str(root), "train", 2, training=False, file_list=str(bad))


def test_epochs_cover_every_file_once(root):
    # deterministic=True: with out-of-order parallel maps an element of epoch 2 may overtake one of epoch 1.
    ds = make_dataset(str(root), "train", 1, training=True, seed=5, repeat=2, crop_sizes=((240, 384),),
                      deterministic=True)
    paths = [b["rgb_path"].numpy()[0].decode() for b in ds]
    assert len(paths) == 2 * N
    assert sorted(paths[:N]) == sorted(paths[N:]) and len(set(paths[:N])) == N


def test_cache_in_memory_gives_identical_batches(root):
    """Decoding once into memory is only a speed-up: the same seed gives bit-identical training batches."""
    kw = dict(training=True, seed=3, deterministic=True)
    plain = list(make_dataset(str(root), "train", 2, **kw).take(3))
    cached = list(make_dataset(str(root), "train", 2, cache_in_memory=True, **kw).take(3))
    for a, b in zip(plain, cached):
        for key in ("image", "depth", "valid", "intrinsics"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
