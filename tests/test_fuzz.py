"""Fuzzing the input side (issue 7 item 6): random bytes, other PNG modes (palette, grayscale, gray+alpha, RGBA,
16-bit gray) and odd sizes (1x1, 481x641, 4000x3000) into `data_check`, `evaluate` and `predict`, each a
subprocess with a timeout: no hang, no traceback, a controlled exit code, and every bad file named."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cases(folder):
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    rgb = rng.integers(0, 255, (480, 640, 3), np.uint8)
    cases = {
        "random_bytes.png": None,
        "palette.png": Image.fromarray(rgb).convert("P"),
        "gray.png": Image.fromarray(rgb[..., 0]),
        "gray_alpha.png": Image.fromarray(rgb[..., :2].copy(), "LA") if hasattr(Image, "fromarray") else None,
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]])),
        "gray16.png": Image.fromarray(rng.integers(0, 65535, (480, 640), np.uint16)),
        "one_pixel.png": Image.fromarray(rgb[:1, :1]),
        "odd_481x641.png": Image.fromarray(rng.integers(0, 255, (481, 641, 3), np.uint8)),
        "big_4000x3000.jpg": Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), np.uint8)),
    }
    for name, img in cases.items():
        path = os.path.join(folder, name)
        if img is None:
            with open(path, "wb") as f:
                f.write(rng.bytes(3000))
        else:
            img.save(path)
    return sorted(cases)


def _run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
               LITEDEPTH_NO_PROGRESS="1")
    r = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout)  # a hang fails the test
    assert "Traceback" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    return r


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from litedepth_tf.model import build_student

    path = str(tmp_path_factory.mktemp("fuzz_model") / "s.weights.h5")
    build_student().save_weights(path)
    return path


def test_predict_handles_every_case(tmp_path, weights):
    names = _cases(str(tmp_path / "in"))
    r = _run("litedepth_tf.predict", "--model", weights, "--input", str(tmp_path / "in"), "--out",
             str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout + r.stderr  # some inputs were written
    out = r.stdout + r.stderr
    assert "random_bytes.png" in out  # the unreadable one is named
    written = sorted(os.listdir(tmp_path / "out" / "depth"))
    for name in names:
        if name != "random_bytes.png":
            assert os.path.splitext(name)[0] + ".png" in written, (name, written, out[-2000:])
    with Image.open(tmp_path / "out" / "depth" / "big_4000x3000.png") as im:
        assert im.size == (4000, 3000)  # depth at the input's own size


def _mai_split(root, names, src):
    for sub in ("rgb", "depth"):
        os.makedirs(os.path.join(root, "local_val", sub), exist_ok=True)
    for name in names:
        stem = os.path.splitext(name)[0]
        os.replace(os.path.join(src, name), os.path.join(root, "local_val", "rgb", stem + ".png"))
        Image.fromarray(np.full((480, 640), 2000, np.uint16)).save(os.path.join(root, "local_val", "depth",
                                                                                 stem + ".png"))


def test_data_check_and_evaluate_name_bad_files(tmp_path, weights):
    src = str(tmp_path / "in")
    names = _cases(src)
    root = str(tmp_path / "root")
    _mai_split(root, names, src)
    r = _run("litedepth_tf.data_check", root)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    for bad in ("random_bytes", "one_pixel", "odd_481x641", "big_4000x3000", "gray", "palette"):
        assert bad in out, (bad, out[-3000:])
    r = _run("litedepth_tf.evaluate", "--weights", weights, "--data_root", root, "--split", "local_val",
             "--nobaseline")
    assert r.returncode in (0, 2), r.stdout + r.stderr
    assert "random_bytes" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
