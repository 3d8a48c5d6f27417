"""The converters (data.convert, `python -m litedepth_tf.convert`): DIODE .npy + masks, .npy folders, the NYU
labelled .mat (HDF5), MAI -> NYU byte copies; what they write is what the presets read back."""

import os

import h5py
import numpy as np
import pytest
from PIL import Image

from litedepth_tf import convert as convert_cmd
from litedepth_tf.data import convert, datasets, fixtures
from litedepth_tf.data.pipeline import make_dataset
from tests.helpers import call_main

HW = (96, 128)  # DIODE is 768x1024; the converter does not care, so keep the test small


def test_diode_mask_and_scale(tmp_path):
    info = fixtures.write_diode(tmp_path / "native", n=2, hw=HW)
    out = tmp_path / "png"
    summary = convert.convert_diode(info["root"], str(out), split="val", progress=False)
    assert summary["frames"] == 2 and summary["depth_scale"] == 256.0
    listing = datasets.list_samples(datasets.get_preset("diode", frame_size=HW), str(out), "val")
    for (_, rgb, dep), src in zip(listing.pairs, info["files"]):
        base = src[:-4]
        depth = np.load(base + "_depth.npy")[..., 0]
        mask = np.load(base + "_depth_mask.npy")
        png = np.asarray(Image.open(dep)).astype(np.int64)
        np.testing.assert_array_equal(png, np.where(mask > 0.5, np.round(depth * 256), 0))
        assert png[: HW[0] // 8].max() == 0  # the masked band (its depth was garbage) is invalid
        assert open(rgb, "rb").read() == open(src, "rb").read()  # RGB copied byte for byte
    assert convert.read_manifest(str(out / "val"))["read_with"].startswith("--dataset diode")


def test_diode_bad_files_are_named(tmp_path):
    info = fixtures.write_diode(tmp_path / "native", n=2, hw=HW)
    mask_path = info["files"][1][:-4] + "_depth_mask.npy"
    np.save(mask_path, np.ones((10, 10), np.float32))
    with pytest.raises(convert.ConvertError, match=r"_depth_mask\.npy: mask \(10, 10\), expected 96x128"):
        convert.convert_diode(info["root"], str(tmp_path / "png"), progress=False)
    assert len(os.listdir(tmp_path / "png" / "val" / "depth")) == 1  # the frame converted before it stays
    os.remove(info["files"][0][:-4] + "_depth.npy")
    with pytest.raises(convert.ConvertError, match=r"no depth partner .*_depth\.npy"):
        convert.diode_samples(info["root"])


def test_npy_folder_round_trip(tmp_path):
    src = tmp_path / "src" / "train"
    for sub in ("rgb", "depth"):
        (src / sub).mkdir(parents=True)
    rgb, depth = fixtures.frame(3, 0, HW, max_depth_m=20.0)
    Image.fromarray(rgb).save(src / "rgb" / "f0.jpg")
    np.save(src / "depth" / "f0.npy", (depth * 100.0).astype(np.float32))  # centimetres
    convert.convert_npy_folder(str(tmp_path / "src"), str(tmp_path / "out"), "train", src_scale=100.0,
                               out_scale=1000.0, progress=False)
    preset = datasets.get_preset("folder", depth_scale=1000)
    b = next(iter(make_dataset(str(tmp_path / "out"), "train", 1, training=False, dataset=preset)))
    want = np.round(depth.astype(np.float32) * 100.0 / 100.0 * 1000.0) / 1000.0
    np.testing.assert_allclose(b["depth"].numpy()[0, ..., 0], want, atol=1e-6)
    (src / "depth" / "f1.npy").write_bytes(b"not numpy")
    Image.fromarray(rgb).save(src / "rgb" / "f1.png")
    with pytest.raises(convert.ConvertError, match=r"f1\.npy: cannot read the depth"):
        convert.convert_npy_folder(str(tmp_path / "src"), str(tmp_path / "out"), "train", progress=False)


def write_labeled_mat(path, n=3, hw=(480, 640), seed=0):
    """A small file shaped like nyu_depth_v2_labeled.mat (MATLAB v7.3 stores arrays transposed; sceneTypes are
    references to uint16 character arrays)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(1, 256, (n, *hw, 3), dtype=np.uint8)
    raw = rng.uniform(0.5, 9.5, (n, *hw)).astype(np.float32)
    raw[:, :5] = 0.0  # raw Kinect depth has holes
    with h5py.File(path, "w") as f:
        f["images"] = rgb.transpose(0, 3, 2, 1)  # [N, 3, W, H]
        f["rawDepths"] = raw.transpose(0, 2, 1)  # [N, W, H]
        f["depths"] = (raw + 1.0).transpose(0, 2, 1)
        names = [f"kitchen_{i}" for i in range(n)]
        for i, name in enumerate(names):
            f[f"#refs#/s{i}"] = np.array([[ord(c)] for c in name], np.uint16)
        refs = f.create_dataset("sceneTypes", (1, n), dtype=h5py.ref_dtype)
        for i in range(n):
            refs[0, i] = f[f"#refs#/s{i}"].ref
    return rgb, raw


def test_nyu_labeled_mat_as_bts_extracts_it(tmp_path):
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    rgb, raw = write_labeled_mat(mat)
    (tmp_path / "idx.txt").write_text("1\n3\n")  # 1-based, as splits.mat's testNdxs
    info = convert.convert_nyu_mat(str(mat), str(tmp_path / "out"), indices=str(tmp_path / "idx.txt"),
                                   rgb_format="png", progress=False)
    listing = datasets.list_samples(datasets.NYU, str(tmp_path / "out"), None, info["split_file"])
    assert len(listing.pairs) == 2
    for (_, r, d), i in zip(listing.pairs, (0, 2)):
        assert r.endswith(os.path.join("test", f"kitchen_{i}", f"rgb_{i:05d}.png"))
        image = np.asarray(Image.open(r))
        np.testing.assert_array_equal(image[7:474, 7:632], rgb[i][7:474, 7:632])
        assert image[:7].max() == 0 and image[474:].max() == 0 and image[:, 632:].max() == 0  # BTS's black border
        np.testing.assert_array_equal(np.asarray(Image.open(d)), (raw[i] * 1000.0).astype(np.uint16))  # raw, truncated
    b = next(iter(make_dataset(str(tmp_path / "out"), None, 1, training=False, dataset="nyu",
                               split_file=info["split_file"])))
    assert b["depth"].shape == (1, 480, 640, 1) and float(b["depth"].numpy()[0, :5].max()) == 0.0
    (tmp_path / "bad_idx.txt").write_text("4\n")
    with pytest.raises(convert.ConvertError, match=r"bad_idx\.txt: frame 4 outside 1\.\.3"):
        convert.convert_nyu_mat(str(mat), str(tmp_path / "o2"), indices=str(tmp_path / "bad_idx.txt"))


def test_command(tmp_path, capsys):
    info = fixtures.write_diode(tmp_path / "native", n=1, hw=HW)
    out = tmp_path / "png"
    assert call_main(convert_cmd, "--dataset=diode", f"--data_root={info['root']}", f"--out={out}",
                     "--noprogress") == 0
    assert "read it with: --dataset diode" in capsys.readouterr().out
    assert call_main(convert_cmd, "--dataset=nyu", f"--nyu_mat={tmp_path / 'absent.mat'}", f"--out={out}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.mat does not exist" in err
    (tmp_path / "not.mat").write_text("x")
    assert call_main(convert_cmd, "--dataset=nyu", f"--nyu_mat={tmp_path / 'not.mat'}", f"--out={out}") == 2
    assert "not an HDF5" in capsys.readouterr().err


def test_mai_to_nyu_copies_bytes(tmp_path):
    mai = tmp_path / "mai"
    for sub in ("rgb", "depth"):
        (mai / "local_val" / sub).mkdir(parents=True)
    rgb, depth = fixtures.frame(0, 0, (480, 640))
    Image.fromarray(rgb).save(mai / "local_val" / "rgb" / "00000.png")
    Image.fromarray(fixtures.to_uint16(depth, 1000.0)).save(mai / "local_val" / "depth" / "00000.png")
    info = convert.mai_to_nyu(str(mai), "local_val", str(tmp_path / "nyu"), progress=False)
    listing = datasets.list_samples(datasets.NYU, str(tmp_path / "nyu" / "local_val"), None, info["split_file"])
    (_, r, d), = listing.pairs
    assert open(r, "rb").read() == open(mai / "local_val" / "rgb" / "00000.png", "rb").read()
    assert open(d, "rb").read() == open(mai / "local_val" / "depth" / "00000.png", "rb").read()
