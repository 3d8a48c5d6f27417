"""Fuzzing the input side: random bytes, empty, truncated and lying-header PNGs, other PNG modes
(palette, grayscale, gray+alpha, RGBA, 16-bit gray, 16-bit RGB) and odd sizes (1x1, 481x641, 4000x3000) into
`predict`, `data_check` and `evaluate`, plus bad depth maps (8-bit, RGB, all 0, all beyond 40 m, wrong size).
Each CLI runs as a subprocess with a timeout (a hang fails the test): a controlled exit code, no Python traceback,
every bad file named, every good one used (predict: gray / RGBA / 16-bit / odd sizes per its documented rules).
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from tests.helpers import run_command

TIMEOUT = 240  # seconds per CLI call; each takes ~5-10 s


def png_raw(path, arr, bits, color_type, size=None, truncate=None):
    """A PNG written by hand (PIL cannot write 16-bit RGB, nor a header that lies about the size)."""
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2" if bits == 16 else "u1").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", *(size or (w, h)), bits, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data[:truncate] if truncate else data)


# name -> how predict treats it: None = unreadable (named, skipped), else the (H, W) of the written depth
IMAGES = {
    "random_bytes.png": None, "random_bytes.jpg": None, "empty.png": None, "truncated.png": None,
    "huge_header.png": None, "huge_header16.png": None,
    "palette.png": (480, 640), "gray.png": (480, 640), "gray_alpha.png": (480, 640), "rgba.png": (480, 640),
    "gray16.png": (480, 640), "rgb16.png": (480, 640), "one_pixel.png": (1, 1), "odd_481x641.png": (481, 641),
    "big_4000x3000.png": (3000, 4000),
}
NOTES = {"gray.png": "grayscale image: replicated to RGB", "rgba.png": "RGBA image: alpha channel dropped",
         "gray_alpha.png": "alpha dropped", "rgb16.png": "scaled from 16-bit", "gray16.png": "scaled from 16-bit"}


def make_images(folder):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    rgb = rng.integers(0, 255, (480, 640, 3), np.uint8)

    def p(name):
        return os.path.join(folder, name)

    for name in ("random_bytes.png", "random_bytes.jpg"):
        with open(p(name), "wb") as f:
            f.write(rng.bytes(3000))
    open(p("empty.png"), "wb").close()
    png_raw(p("truncated.png"), rgb, 8, 2, truncate=5000)
    png_raw(p("huge_header.png"), rgb[:4, :4], 8, 2, size=(100000, 100000))  # PIL: decompression bomb
    png_raw(p("huge_header16.png"), rgb[:4, :4], 16, 2, size=(100000, 100000))  # TF decode: too large
    Image.fromarray(rgb).convert("P").save(p("palette.png"))
    Image.fromarray(rgb[..., 0]).save(p("gray.png"))
    Image.fromarray(rgb[..., :2].copy(), "LA").save(p("gray_alpha.png"))
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(p("rgba.png"))
    Image.fromarray(rng.integers(0, 65535, (480, 640), np.uint16)).save(p("gray16.png"))  # 'I;16'
    png_raw(p("rgb16.png"), rng.integers(0, 65535, (480, 640, 3), np.uint16), 16, 2)  # 16-bit RGB
    Image.fromarray(rgb[:1, :1]).save(p("one_pixel.png"))
    Image.fromarray(rng.integers(0, 255, (481, 641, 3), np.uint8)).save(p("odd_481x641.png"))
    ramp = np.linspace(0, 255, 4000, dtype=np.float32)[None, :, None] * np.ones((3000, 1, 3), np.float32)
    Image.fromarray(ramp.astype(np.uint8)).save(p("big_4000x3000.png"), compress_level=1)
    assert sorted(os.listdir(folder)) == sorted(IMAGES)


def _run(*args):
    r = run_command(["-m", *args], timeout=TIMEOUT)  # a hang raises TimeoutExpired
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-4000:]
    return r.returncode, out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from litedepth_tf.models.student import build_student

    path = str(tmp_path_factory.mktemp("fuzz_model") / "s.weights.h5")
    build_student().save_weights(path)
    return path


def test_predict_every_case(tmp_path, weights):
    src, out = str(tmp_path / "in"), tmp_path / "out"
    make_images(src)
    (out / "depth" / "palette.png").mkdir(parents=True)  # a directory where an output must go: write fails
    rc, log = _run("litedepth_tf.predict", "--weights", weights, "--input", src, "--out", str(out))
    assert rc == 0, log[-4000:]  # some inputs were written
    for name, hw in IMAGES.items():
        path = os.path.join(src, name)
        if hw is None:
            assert f"error: cannot read image '{path}'" in log, (name, log[-4000:])
        elif name == "palette.png":  # read fine, but its output could not be written: named, the run goes on
            assert f"error: cannot write the outputs of '{path}'" in log, log[-4000:]
        else:
            with Image.open(out / "depth" / (os.path.splitext(name)[0] + ".png")) as im:
                assert (im.height, im.width) == hw and im.mode == "I;16", (name, im.size, im.mode)
    for name, note in NOTES.items():
        assert f"note: {os.path.join(src, name)}: " in log and note in log, (name, log[-4000:])
    n_bad = sum(hw is None for hw in IMAGES.values()) + 1
    assert f"{n_bad} input(s) failed" in log, log[-4000:]
    written = {n for n in os.listdir(out / "depth") if not n.startswith(".")}
    assert written == {os.path.splitext(n)[0] + ".png" for n, hw in IMAGES.items() if hw}, written


def test_predict_every_input_bad_and_unwritable_out(tmp_path, weights):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (src / "b.jpg").write_bytes(os.urandom(100))
    rc, log = _run("litedepth_tf.predict", "--weights", weights, "--input", str(src), "--out", str(tmp_path / "o"))
    assert rc == 1 and str(src / "a.png") in log and str(src / "b.jpg") in log, log[-3000:]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, log = _run("litedepth_tf.predict", "--weights", weights, "--input", str(src), "--out", str(blocker / "o"))
    assert rc == 2 and f"cannot write into the output folder '{blocker / 'o'}'" in log, log[-3000:]


# ------------------------------------------------------------------------------------------ MAI split

GOOD_DEPTH = np.full((480, 640), 2000, np.uint16)
DEPTHS = {"depth_8bit": np.full((480, 640), 20, np.uint8), "depth_rgb": np.zeros((480, 640, 3), np.uint8),
          "depth_all_zero": np.zeros((480, 640), np.uint16), "depth_all_far": np.full((480, 640), 60000, np.uint16),
          "depth_odd_size": np.full((481, 641), 2000, np.uint16), "depth_random_bytes": None,
          "depth_truncated": "truncated"}
RGB_OK = ("rgba",)  # RGB files the pipeline accepts (alpha dropped); every other fuzz image is bad in a split


def make_split(root, src):
    """Every fuzz image as the RGB of a pair with a good depth map, plus good RGB with each bad depth map."""
    rng = np.random.default_rng(1)
    r, d = os.path.join(root, "rgb"), os.path.join(root, "depth")
    os.makedirs(r)
    os.makedirs(d)
    for name in IMAGES:
        if name.endswith(".png"):
            os.replace(os.path.join(src, name), os.path.join(r, name))
            Image.fromarray(GOOD_DEPTH).save(os.path.join(d, name))
    rgb = rng.integers(0, 255, (480, 640, 3), np.uint8)
    for stem, depth in {"good": GOOD_DEPTH, **DEPTHS}.items():
        Image.fromarray(rgb).save(os.path.join(r, stem + ".png"))
        path = os.path.join(d, stem + ".png")
        if depth is None:
            with open(path, "wb") as f:
                f.write(rng.bytes(2000))
        elif isinstance(depth, str):
            png_raw(path, GOOD_DEPTH, 16, 0, truncate=300)
        else:
            Image.fromarray(depth).save(path)
    stems = [os.path.splitext(n)[0] for n in os.listdir(r)]
    return sorted(s for s in stems if s not in RGB_OK + ("good",)), sorted(RGB_OK + ("good",))


def _named(stem, text):
    return f"/{stem}.png" in text


def test_data_check_and_evaluate_name_every_bad_file(tmp_path, weights):
    src, root = str(tmp_path / "in"), tmp_path / "root"
    make_images(src)
    bad, good = make_split(str(root / "val"), src)
    rc, log = _run("litedepth_tf.data_check", "--data_root", str(root), "--noprogress")
    assert rc == 1, log[-4000:]
    failed = log.split("FAILED:")[-1]
    for stem in bad:
        assert _named(stem, failed), (stem, log[-4000:])
    for stem in good:
        assert not _named(stem, failed), (stem, failed)

    report = tmp_path / "eval.json"  # baseline on: the median of the split's own depth maps, bad ones left out
    rc, log = _run("litedepth_tf.evaluate", "--weights", weights, "--data_root", str(root), "--split", "val",
                   "--out", str(report))
    assert rc == 0, log[-4000:]
    rep = json.loads(report.read_text())
    assert rep["n_images"] == len(good) and rep["baseline"]["median_depth_m"] == 2.0, rep
    named = " ".join(rep["bad_files"])
    for stem in bad:
        assert _named(stem, named) and _named(stem, log), (stem, rep["bad_files"])
    assert not any(_named(stem, named) for stem in good), rep["bad_files"]
    assert f"{len(rep['bad_files'])} bad file(s) left out" in log


def test_evaluate_all_bad_split_stops_with_a_message(tmp_path, weights):
    split = tmp_path / "root" / "val"
    for sub in ("rgb", "depth"):
        (split / sub).mkdir(parents=True)
    rgb = np.zeros((480, 640, 3), np.uint8)
    for i in range(3):  # headers fine, bodies truncated: found only while decoding
        Image.fromarray(rgb).save(split / "rgb" / f"{i}.png")
        png_raw(str(split / "depth" / f"{i}.png"), GOOD_DEPTH, 16, 0, truncate=300)
    rc, log = _run("litedepth_tf.evaluate", "--weights", weights, "--data_root", str(tmp_path / "root"),
                   "--split", "val", "--nobaseline")
    assert rc == 2 and "error: every one of the 3 samples" in log and _named("2", log), log[-3000:]
