"""Synthetic MAI-layout generator: format, plausibility, determinism across worker counts, reuse."""

import json
import os

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import MAX_DEPTH
from litedepth_tf.data import synthetic
from litedepth_tf import data_check as data_check_cmd
from litedepth_tf import synthetic as synthetic_cmd
from tests.helpers import call_main


def read_tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".png"):
                p = os.path.join(dirpath, f)
                out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_frame_format_and_plausibility():
    stats = []
    for i in range(3):
        rgb, d = synthetic.render_frame(0, i)
        assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
        assert d.shape == (480, 640) and d.dtype == np.uint16
        v = d > 0
        assert 0.3 < v.mean() < 1.0  # has valid pixels and sensor-like holes
        assert d[v].min() >= 300 and d[v].max() <= MAX_DEPTH * 1000
        assert d[v].max() / d[v].min() > 3  # a real depth range, not a flat wall
        assert rgb.std() > 10
        stats.append(d[v].mean())
    assert len(set(stats)) == 3
    a, b = synthetic.render_frame(0, 1)
    np.testing.assert_array_equal(a, synthetic.render_frame(0, 1)[0])
    assert not np.array_equal(a, synthetic.render_frame(1, 1)[0])
    assert not np.array_equal(a, synthetic.render_frame(0, 1, "local_val")[0])


def test_generate_layout_determinism_and_reuse(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert call_main(synthetic_cmd, "--out", one, "--train", 3, "--val", 1, "--seed", 4, "--workers", 1, "--noprogress") == 0
    assert "frames/s" in capsys.readouterr().out
    synthetic.generate(str(two), 3, 1, seed=4, workers=2, progress=False)
    a, b = read_tree(one), read_tree(two)
    assert sorted(a) == sorted(os.path.join(s, k, f"{i:05d}.png") for s, n in (("train", 3), ("local_val", 1))
                               for k in ("rgb", "depth") for i in range(n))
    assert a == b  # byte-identical whatever the number of processes
    assert not [f for f in os.listdir(one / "train" / "rgb") if f.startswith(".")]  # no temp files left
    with Image.open(one / "train" / "depth" / "00000.png") as im:
        assert im.mode.startswith("I") and np.asarray(im).dtype == np.uint16
    assert call_main(data_check_cmd, "--data_root", one, "--noprogress") == 0
    man = json.loads((one / synthetic.MANIFEST).read_text())
    assert man["train"] == 3 and man["frames_per_second"] > 0
    assert synthetic.ensure_synthetic(str(one), 3, 1, seed=4, progress=False).get("reused")
    os.remove(one / "train" / "rgb" / "00002.png")
    man = synthetic.ensure_synthetic(str(one), 3, 1, seed=4, workers=1, progress=False)
    assert not man.get("reused") and (one / "train" / "rgb" / "00002.png").exists()


def test_fewer_frames_into_a_used_folder_leaves_exactly_those(tmp_path):
    root = tmp_path / "set"
    synthetic.generate(str(root), 3, 2, seed=4, workers=1, progress=False)
    keep = (root / "train" / "rgb" / "notes.png")  # not a generator frame name: left alone
    keep.write_bytes(b"x")
    first = read_tree(root)
    synthetic.generate(str(root), 1, 1, seed=4, workers=1, progress=False)
    now = read_tree(root)
    assert sorted(now) == sorted([os.path.join("train", "rgb", "notes.png")] + [
        os.path.join(s, k, "00000.png") for s in ("train", "local_val") for k in ("rgb", "depth")])
    assert all(now[k] == first[k] for k in now)  # the kept frames are the same bytes


def test_bounding_sphere_culling_loses_no_hit():
    """Boxes and cylinders are intersected only on the rays that pass a bounding-sphere test; the result must equal
    intersecting every ray (bit for bit), for primary rays from one origin and for shadow rays from many."""
    from litedepth_tf.data import synthetic as syn

    rng = np.random.default_rng(3)
    n = 200_000
    D = tuple(v.astype(np.float32) for v in rng.normal(size=(3, n)))
    origins = {"camera": (0.0, 1.4, 0.0), "surface": tuple(v.astype(np.float32) for v in rng.uniform(-3, 3, (3, n)))}
    box = syn._Obj("box", dict(c=(0.4, 0.9, 2.5), half=(0.6, 0.9, 0.4), yaw=0.3), albedo=np.ones(3, np.float32))
    cyl = syn._Obj("cylinder", dict(c=(-0.7, 0.0, 3.0), r=0.35, h=1.8), albedo=np.ones(3, np.float32))
    for name, O in origins.items():
        full_box = syn._hit_box(O, D, box.params["c"], box.params["half"], box.params["yaw"])
        full_cyl = syn._hit_cylinder(O, D, cyl.params["c"], cyl.params["r"], cyl.params["h"])
        assert np.isfinite(full_box).sum() > 1000 and np.isfinite(full_cyl).sum() > 1000, name  # rays do hit
        np.testing.assert_array_equal(box.hit(O, D), full_box, err_msg=name)
        np.testing.assert_array_equal(cyl.hit(O, D), full_cyl, err_msg=name)
