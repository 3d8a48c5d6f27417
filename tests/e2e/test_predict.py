"""python -m litedepth_tf.predict: images, folders (bad files skipped), videos, MAI uint16 millimetres."""

import os

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib import colormaps
from PIL import Image

import litedepth_tf
from litedepth_tf.tflite.export import export_tflite
from litedepth_tf.data.pipeline import decode_pair
from litedepth_tf import predict
from litedepth_tf.common.images import depth_to_mm
from litedepth_tf.common.pointcloud import default_intrinsics
from tests.helpers import REPO, call_main, read_ply, run_command, student_files


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return student_files(tmp_path_factory.mktemp("predict_models"), 31)


def _image(h, w, seed=0):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    noise = np.random.default_rng(seed).normal(0, 10, (h, w, 3))
    return np.clip(np.stack([255 * yy, 255 * xx, 128 + 90 * np.sin(7 * xx)], -1) + noise, 0, 255).astype(np.uint8)


def _png_size(path):
    with Image.open(path) as im:
        return im.size[1], im.size[0]


def test_single_image_uint16_mm_round_trip(models, tmp_path):
    src = tmp_path / "in" / "frame 1.png"
    src.parent.mkdir()
    Image.fromarray(_image(480, 640)).save(src)
    out = tmp_path / "out"
    assert call_main(predict, *["--weights", models[0], "--input", str(src), "--out", str(out)]) == 0
    depth_png, color_png = out / "depth" / "frame 1.png", out / "color" / "frame 1.png"
    assert _png_size(depth_png) == _png_size(color_png) == (480, 640)
    with Image.open(depth_png) as im:
        assert im.mode == "I;16"
    expected = litedepth_tf.load(models[0]).predict(np.asarray(Image.open(src)))
    _, depth = decode_pair(str(src), str(depth_png))  # the MAI reader: uint16 mm -> metres
    assert np.abs(depth.numpy()[..., 0] - expected).max() <= 1e-3 + 1e-6
    assert np.asarray(Image.open(color_png)).shape == (480, 640, 3)


def test_depth_to_mm_is_the_mai_convention():
    d = np.array([[0.0, 0.0004, 0.0005, 1.2344, 1.2346], [40.0, 65.535, 70.0, np.nan, np.inf]])
    np.testing.assert_array_equal(depth_to_mm(d), [[0, 0, 0, 1234, 1235], [40000, 65535, 65535, 0, 0]])


def test_folder_with_odd_sizes_gray_rgba_16bit_and_a_corrupt_file(models, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(481, 641)).save(src / "odd.jpg", quality=95)
    Image.fromarray(_image(200, 300)[..., 0]).save(src / "gray.png")
    Image.fromarray(np.dstack([_image(240, 320), np.full((240, 320), 128, np.uint8)])).save(src / "rgba.png")
    (src / "rgb16.png").write_bytes(tf.io.encode_png(_image(120, 160).astype(np.uint16) * 257).numpy())
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (src / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    code = call_main(predict, *["--tflite", models[1], "--input", str(src), "--out", str(out), "--side_by_side", "--colorbar"])
    err = capsys.readouterr()
    assert code == 0
    assert "broken.png" in err.err and "readme.txt" in err.err
    assert "grayscale" in err.out and "alpha" in err.out and "16-bit" in err.out
    sizes = {"odd": (481, 641), "gray": (200, 300), "rgba": (240, 320), "rgb16": (120, 160)}
    assert sorted(os.listdir(out / "depth")) == sorted(f"{s}.png" for s in sizes)
    for stem, (h, w) in sizes.items():
        assert _png_size(out / "depth" / f"{stem}.png") == (h, w)
        ch, cw = _png_size(out / "color" / f"{stem}.png")
        assert ch == h and cw > w  # colour bar on the right
        assert _png_size(out / "side_by_side" / f"{stem}.png") == (h, w + cw)
    # the 16-bit image gives the same depth as its 8-bit version
    d16 = np.asarray(Image.open(out / "depth" / "rgb16.png"), np.float64)
    d8 = depth_to_mm(litedepth_tf.load(models[1]).predict(_image(120, 160)))
    assert np.abs(d16 - d8).max() <= 1


def test_all_failed_is_exit_1_and_usage_errors_exit_2(models, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"garbage")
    assert call_main(predict, *["--tflite", models[1], "--input", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "a.jpg" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert call_main(predict, *["--tflite", models[1], "--input", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "empty" in capsys.readouterr().err
    (tmp_path / "x.xyz").write_text("?")
    assert call_main(predict, *["--tflite", models[1], "--input", str(tmp_path / "x.xyz"), "--out", str(tmp_path / "o")]) == 2
    assert "x.xyz" in capsys.readouterr().err and True
    img = tmp_path / "ok.png"
    Image.fromarray(_image(48, 64)).save(img)
    assert call_main(predict, *["--tflite", models[1], "--input", str(img), "--out", str(tmp_path / "o"),
                 "--colormap", "no_such_map"]) == 2
    assert "no_such_map" in capsys.readouterr().err
    inputs = keras.Input((240, 320, 3), batch_size=1)
    wrong = export_tflite(keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs)), str(tmp_path / "wrong.tflite"))
    assert call_main(predict, *["--tflite", wrong, "--input", str(img), "--out", str(tmp_path / "o")]) == 2
    msg = capsys.readouterr().err
    assert "wrong.tflite" in msg and "signature" in msg


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_video(models, tmp_path, ext):
    frames = np.stack([np.roll(_image(96, 130, seed=i), 4 * i, axis=1) for i in range(5)])
    src = tmp_path / f"clip{ext}"
    if ext == ".gif":
        iio.imwrite(src, frames, duration=200, loop=0)
    else:
        iio.imwrite(src, frames, plugin="FFMPEG", fps=5, macro_block_size=2)
    out = tmp_path / "out"
    assert call_main(predict, *["--tflite", models[1], "--input", str(src), "--out", str(out), "--side_by_side",
                 "--save_frames", "--range", "fixed", "--vmin", "0", "--vmax", "8", "--ply"]) == 0
    depth_video = [f for f in iio.imiter(out / "clip_depth.mp4", plugin="FFMPEG")]
    sbs = [f for f in iio.imiter(out / "clip_side_by_side.mp4", plugin="FFMPEG")]
    assert len(depth_video) == len(sbs) == 5
    assert depth_video[0].shape == (96, 130, 3) and sbs[0].shape == (96, 260, 3)
    assert iio.immeta(out / "clip_depth.mp4", plugin="FFMPEG")["fps"] == pytest.approx(5.0)
    assert sorted(os.listdir(out / "depth")) == [f"clip_{i:06d}.png" for i in range(5)]
    assert _png_size(out / "depth" / "clip_000003.png") == (96, 130)
    assert sorted(os.listdir(out / "ply")) == [f"clip_{i:06d}.ply" for i in range(5)]
    assert len(read_ply((out / "ply" / "clip_000002.ply").read_bytes())[1]) == 96 * 130
    assert not [n for n in os.listdir(out) if n.endswith(".tmp") or n.startswith(".")]


def _folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(480, 640, seed=1)).save(src / "a.png")
    Image.fromarray(_image(97, 131, seed=2)).save(src / "b.png")
    Image.fromarray(_image(240, 320, seed=3)[..., 0]).save(src / "c_gray.png")
    Image.fromarray(_image(120, 160, seed=4)).save(src / "d.jpg", quality=90)
    (src / "e_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    Image.fromarray(_image(64, 80, seed=5)).save(src / "f.png")
    return src


def _tree(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}


def test_the_pipeline_writes_the_same_bytes_as_one_file_after_another(models, tmp_path):
    """--workers 0 (one thread, file after file) and the threaded pipeline: the same files, byte for byte, in
    input order; the depth PNGs hold exactly the API's depth in millimetres."""
    src = _folder(tmp_path)
    args = ["--tflite", models[1], "--input", str(src), "--side_by_side", "--colorbar", "--ply"]
    assert call_main(predict, *args, "--out", str(tmp_path / "serial"), "--workers", "0") == 0
    assert call_main(predict, *args, "--out", str(tmp_path / "threads"), "--workers", "3") == 0
    serial, threads = _tree(tmp_path / "serial"), _tree(tmp_path / "threads")
    assert sorted(serial) == sorted(threads) and len(serial) == 5 * 4  # 5 readable inputs x 4 outputs
    assert [k for k in serial if serial[k] != threads[k]] == []
    model = litedepth_tf.load(models[1])
    for stem, ext in (("a", "png"), ("b", "png"), ("d", "jpg")):
        img = np.asarray(Image.open(src / f"{stem}.{ext}"))
        depth = model.predict(img)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "threads" / "depth" / f"{stem}.png")),
                                      depth_to_mm(depth))
        lo, hi = np.percentile(depth, [2, 98])  # the colour map by hand: magma over the 2..98th percentile
        lut = (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
        want = lut[(np.clip((depth - np.float32(lo)) / np.float32(max(hi - lo, 1e-3)), 0, 1) * 255).astype(int)]
        got = np.asarray(Image.open(tmp_path / "threads" / "color" / f"{stem}.png"))
        np.testing.assert_array_equal(got[:, :depth.shape[1]], want)  # (the colour bar is to the right)
    assert not [n for n in os.listdir(tmp_path / "threads" / "depth") if n.startswith(".")]  # no temp left
    # every zlib level: other bytes, the same pixels
    assert call_main(predict, *args, "--out", str(tmp_path / "stored"), "--png_level", "0") == 0
    for name in ("depth/a.png", "color/b.png", "side_by_side/f.png"):
        stored = (tmp_path / "stored" / name).read_bytes()
        assert len(stored) > len(threads[name])
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "stored" / name)),
                                      np.asarray(Image.open(tmp_path / "threads" / name)))


def test_ply_per_image_and_no_colour_maps_with_nocolor(models, tmp_path):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    k = (500.0, 480.0, 330.0, 250.0)
    assert call_main(predict, "--tflite", models[1], "--input", str(src), "--out", str(out), "--nocolor", "--ply",
                     "--intrinsics", ",".join(map(str, k))) == 0
    assert sorted(os.listdir(out)) == ["depth", "ply"]  # no colour maps
    assert sorted(os.listdir(out / "ply")) == ["a.ply", "b.ply", "c_gray.ply", "d.ply", "f.ply"]
    img = np.asarray(Image.open(src / "a.png"))
    header, v = read_ply((out / "ply" / "a.ply").read_bytes())
    assert len(v) == 480 * 640 and "element vertex 307200" in header
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], -1), img.reshape(-1, 3))
    depth_mm = np.asarray(Image.open(out / "depth" / "a.png"), np.float64)
    np.testing.assert_allclose(v["z"], depth_mm.ravel() / 1000.0, atol=0.5e-3 + 1e-6)  # PNG: whole millimetres
    vv, uu = np.divmod(np.arange(len(v)), 640)
    np.testing.assert_allclose(v["x"], (uu - k[2]) * v["z"] / k[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v["y"], (vv - k[3]) * v["z"] / k[1], rtol=1e-5, atol=1e-6)
    gray = read_ply((out / "ply" / "c_gray.ply").read_bytes())[1]
    assert len(gray) == 240 * 320 and (gray["red"] == gray["blue"]).all()  # replicated to RGB


def test_ply_default_intrinsics_are_the_mai_camera_at_the_frame_size(models, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(240, 320)).save(src / "half.png")
    out = tmp_path / "out"
    assert call_main(predict, "--tflite", models[1], "--input", str(src / "half.png"), "--out", str(out),
                     "--ply", "--nocolor") == 0
    v = read_ply((out / "ply" / "half.ply").read_bytes())[1]
    fx, fy, cx, cy = default_intrinsics((240, 320))
    points, _ = litedepth_tf.load(models[1]).point_cloud(np.asarray(Image.open(src / "half.png")))
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], -1), points)
    vv, uu = np.divmod(np.arange(len(v)), 320)
    np.testing.assert_allclose(v["x"], (uu - cx) * v["z"] / fx, rtol=1e-5, atol=1e-6)


def test_bad_intrinsics_and_workers_are_usage_errors(models, tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.fromarray(_image(48, 64)).save(img)
    base = ["--tflite", models[1], "--input", str(img), "--out", str(tmp_path / "o")]
    assert call_main(predict, *base, "--ply", "--intrinsics", "500,500,320") == 2
    assert "--intrinsics" in capsys.readouterr().err
    assert call_main(predict, *base, "--workers", "-1") == 2
    assert "--workers" in capsys.readouterr().err
    assert call_main(predict, *base, "--png_level", "10") == 2
    assert "--png_level" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_exif_orientation_is_applied(models, tmp_path, capsys):
    src = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60 wide x 40 high, shown rotated by 90 degrees: 40 wide x 60 high
    Image.fromarray(_image(40, 60)).save(src, exif=exif, quality=95)
    out = tmp_path / "out"
    assert call_main(predict, "--tflite", models[1], "--input", str(src), "--out", str(out), "--nocolor") == 0
    assert _png_size(out / "depth" / "rotated.png") == (60, 40)
    assert f"note: {src}: EXIF orientation applied" in capsys.readouterr().out


def test_tflite_predict_runs_without_tensorflow(models, tmp_path):
    """`predict --tflite` on a folder (an 8-bit and a 16-bit RGB PNG) with a TensorFlow that cannot be imported:
    a `tensorflow` package on PYTHONPATH whose import raises (not ImportError: an optional import that swallows
    ImportError would still load the real one without this). The outputs are those of the API."""
    poison = tmp_path / "poison" / "tensorflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise RuntimeError('predict --tflite imported tensorflow')\n")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(48, 64)).save(src / "a.png")
    (src / "b16.png").write_bytes(tf.io.encode_png(_image(40, 50, seed=3).astype(np.uint16) * 257).numpy())
    out = tmp_path / "out"
    proc = run_command(["-m", "litedepth_tf.predict", "--tflite", models[1], "--input", src, "--out", out],
                       env={"PYTHONPATH": os.pathsep.join([str(poison.parent), REPO])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = litedepth_tf.load(models[1])
    np.testing.assert_array_equal(np.asarray(Image.open(out / "depth" / "a.png")),
                                  depth_to_mm(model.predict(_image(48, 64))))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "depth" / "b16.png")),
                                  depth_to_mm(model.predict(_image(40, 50, seed=3).astype(np.uint16) * 257)))


def test_predict_benchmark_library(models, tmp_path):
    """litedepth_tf.inference.benchmark (behind export/benchmark_predict.py) on 3 frames: photo-like PNGs that
    differ, the network alone, and predict's own frames/s for two variants."""
    from litedepth_tf.common.cli import InputError
    from litedepth_tf.inference.benchmark import benchmark_predict, make_frames, parse_variants

    frames = make_frames(tmp_path / "frames", 3)  # the network's own 480x640 (the network alone runs on one)
    arrays = [np.asarray(Image.open(p)) for p in frames]
    assert [a.shape for a in arrays] == [(480, 640, 3)] * 3 and not np.array_equal(arrays[0], arrays[1])
    with pytest.raises(InputError, match="NAME=extra"):
        parse_variants(["--nocolor"])
    variants = parse_variants(["default=", "depth_only=--nocolor --png_level 0"])
    assert variants == [("default", []), ("depth_only", ["--nocolor", "--png_level", "0"])]
    res = benchmark_predict(models[1], frames, str(tmp_path), variants, runs=3, repeats=1, log=lambda m: None)
    net = res["network_alone"]
    assert net["frames_per_s"] == pytest.approx(1000.0 / net["mean_ms"]) and net["before"]["runs"] == 3
    default, depth_only = res["predict"]
    assert default["runs"][0]["files_written"] == 6 and depth_only["runs"][0]["files_written"] == 3
    for r in res["predict"]:
        assert r["frames_per_s"] > 0 and r["ratio"] == pytest.approx(r["frames_per_s"] / net["frames_per_s"])
