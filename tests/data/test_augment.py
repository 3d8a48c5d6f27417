"""R-crop / colour augmentation: each property checked eagerly (augment.* on tensors) and inside tf.data
(make_dataset on frames written to disk).

Two kinds of test frames (480x640):
* blocks: 32x32-pixel blocks, block id k in 1..250 (0 = invalid block); depth = k * 0.1 m, red = k, plus 1 % random
  single-pixel dropouts in depth only. Where the depth is constant over a 7x7 neighbourhood, the (rotated,
  flipped, cropped, resized) image must still read red == 10 * depth exactly: image and depth moved together.
* radial: depth = 1 + r / 100 m with r the pixel distance to the principal point, invalid on the ring
  100 <= r < 110. Rotations about the principal point, flips and crops preserve r measured from the *updated*
  intrinsics, so every valid output pixel satisfies |r' - 100 (d - 1)| <= 1 px (nearest sampling), and pixels
  whose r' lies inside the ring are invalid.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from litedepth_tf.data import augment
from litedepth_tf.common.constants import MAI_INTRINSICS
from litedepth_tf.data.pipeline import make_dataset

H, W = 480, 640
K = np.array(MAI_INTRINSICS, np.float32)


def blocks_frame(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 251, (H // 32, W // 32))
    ids[rng.random(ids.shape) < 0.1] = 0
    ids = np.repeat(np.repeat(ids, 32, 0), 32, 1)
    depth_mm = (ids * 100).astype(np.uint16)
    depth_mm[rng.random((H, W)) < 0.01] = 0
    rgb = np.stack([ids, 255 - ids, np.full_like(ids, 128)], -1).astype(np.uint8)
    return rgb, depth_mm


def radial_frame():
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.hypot(u - K[2], v - K[3])
    depth_mm = np.round((1 + r / 100) * 1000).astype(np.uint16)
    depth_mm[(r >= 100) & (r < 110)] = 0
    rgb = np.stack([np.clip(r / 2, 0, 255)] * 3, -1).astype(np.uint8)
    return rgb, depth_mm


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("augdata")
    frames = {"blocks": [blocks_frame(s) for s in range(4)], "radial": [radial_frame()] * 2}
    for split, fr in frames.items():
        for sub in ("rgb", "depth"):
            os.makedirs(root / split / sub)
        for i, (rgb, d) in enumerate(fr):
            Image.fromarray(rgb).save(root / split / "rgb" / f"{i:05d}.png", compress_level=1)
            Image.fromarray(d).save(root / split / "depth" / f"{i:05d}.png", compress_level=1)
    return str(root)


def eager_augment(rgb, depth_mm, seed, crop_sizes=augment.CROP_SIZES, color_prob=0.5, fused=True):
    """The training augmentation chain, eagerly, for one frame (batch of 1).

    fused: ``rcrop_batch`` (what the pipeline runs); else the step-by-step reference ops.
    """
    image = tf.constant(rgb, tf.float32)
    depth = tf.constant(depth_mm[..., None], tf.float32) / 1000.0
    s = augment.split_seed(seed, 4)
    if fused:
        angle, flipped = augment.random_rotate_flip_params(s[0])
        image, depth, k, _ = augment.rcrop_batch(image[None], depth[None], K[None], angle[None], flipped[None], s[2],
                                                 crop_sizes)
    else:
        image, depth, angle = augment.random_rotate(image, depth, K, s[0])
        image, depth, k, flipped = augment.random_flip(image, depth, K, s[1])
        image, depth, k, _ = augment.random_crop_batch(image[None], depth[None], k[None], s[2], crop_sizes)
    image = augment.color_augment(image, s[3], prob=color_prob)
    return dict(image=image.numpy(), depth=depth.numpy(), intrinsics=k.numpy(), angle=float(angle),
                flipped=bool(flipped))


def pipeline_batches(root, split, n_batches=3, seed=0, **kw):
    ds = make_dataset(root, split, batch_size=2, training=True, seed=seed, deterministic=True, **kw)
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n_batches)]


def elements(batches):
    for b in batches:
        for i in range(b["depth"].shape[0]):
            yield {k: v[i:i + 1] for k, v in b.items()}


# ------------------------------------------------------------------------------------------------ checks


def check_block_consistency(image, depth):
    """red == 10 * depth wherever the output depth is constant and valid over 7x7."""
    d, img = depth[0, ..., 0], image[0, ..., 0]
    ch, cw = d.shape
    ih, iw = img.shape
    ii, jj = np.mgrid[0:ih, 0:iw]
    y0 = np.round((ii + 0.5) * ch / ih - 0.5).astype(int)
    x0 = np.round((jj + 0.5) * cw / iw - 0.5).astype(int)
    inner = (y0 >= 3) & (y0 < ch - 3) & (x0 >= 3) & (x0 < cw - 3)  # window inside the output frame
    y, x = np.clip(y0, 3, ch - 4), np.clip(x0, 3, cw - 4)
    win = np.stack([d[y + dy, x + dx] for dy in range(-3, 4) for dx in range(-3, 4)])
    const = (win.max(0) == win.min(0)) & (win[0] > 0) & inner
    assert const.mean() > 0.1, const.mean()  # thousands of checked pixels
    np.testing.assert_allclose(img[const], 10 * d[y, x][const], atol=2e-3)


def check_radial(depth, intrinsics):
    d = depth[0, ..., 0]
    fx, fy, cx, cy = intrinsics[0]
    v, u = np.mgrid[0:d.shape[0], 0:d.shape[1]].astype(np.float32)
    r = np.hypot(u - cx, v - cy)
    valid = d > 0
    assert valid.mean() > 0.5
    err = np.abs(r - 100 * (d - 1))[valid]
    assert err.max() <= 1.0, err.max()
    ring = (r > 101) & (r < 109)
    if ring.any():
        assert not valid[ring].any()  # invalid stays invalid


def check_values_subset(depth, allowed):
    vals = np.unique(depth)
    assert np.isin(vals, allowed).all(), vals[~np.isin(vals, allowed)][:10]


# ------------------------------------------------------------------------------------------------ eager

SEEDS = [[0, i] for i in range(6)]


@pytest.mark.parametrize("fused", [True, False])
def test_eager_covers_rotation_and_flip(fused):
    rgb, dmm = blocks_frame(0)
    outs = [eager_augment(rgb, dmm, s, fused=fused) for s in SEEDS]
    assert any(o["angle"] != 0 for o in outs) and any(o["angle"] == 0 for o in outs)
    assert any(o["flipped"] for o in outs) and any(not o["flipped"] for o in outs)
    assert all(abs(o["angle"]) <= np.deg2rad(2.5) + 1e-6 for o in outs)


@pytest.mark.parametrize("fused", [True, False])
def test_eager_geometric_consistency_blocks(fused):
    for s in SEEDS:
        rgb, dmm = blocks_frame(s[1])
        o = eager_augment(rgb, dmm, s, color_prob=0.0, fused=fused)
        check_block_consistency(o["image"], o["depth"])
        check_values_subset(o["depth"], np.unique(dmm.astype(np.float32) / 1000.0))


def test_eager_explicit_rotate_flip_consistency():
    rgb, dmm = blocks_frame(7)
    image = tf.constant(rgb, tf.float32)
    depth = tf.constant(dmm[..., None], tf.float32) / 1000.0
    for angle in (-2.5, 1.3, 2.5):
        im, d = augment.rotate(image, depth, np.deg2rad(angle), (K[2], K[3]))
        im, d, _ = augment.flip(im, d, K)
        check_block_consistency(im.numpy()[None], d.numpy()[None])
        assert (d.numpy()[0, 0] == 0).all() or (d.numpy()[0, -1] == 0).all()  # padded corner is invalid


@pytest.mark.parametrize("fused", [True, False])
def test_eager_radial_intrinsics_and_invalid_ring(fused):
    rgb, dmm = radial_frame()
    for s in SEEDS:
        o = eager_augment(rgb, dmm, s, fused=fused)
        check_radial(o["depth"], o["intrinsics"])


@pytest.mark.parametrize("fused", [True, False])
def test_eager_same_seed_same_result_and_color_range(fused):
    rgb, dmm = blocks_frame(1)
    a = eager_augment(rgb, dmm, [5, 5], color_prob=1.0, fused=fused)
    b = eager_augment(rgb, dmm, [5, 5], color_prob=1.0, fused=fused)
    c = eager_augment(rgb, dmm, [5, 6], color_prob=1.0, fused=fused)
    for k in ("image", "depth", "intrinsics"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["image"].shape != c["image"].shape or not np.array_equal(a["image"], c["image"])
    assert 0 <= a["image"].min() and a["image"].max() <= 255
    x = tf.constant(np.full((2, 4, 4, 3), 100.0, np.float32))
    np.testing.assert_array_equal(augment.color_augment(x, [1, 2], prob=0.0).numpy(), x.numpy())
    y = augment.color_augment(x, [1, 2], prob=1.0).numpy()
    assert not np.array_equal(y, x.numpy()) and (y >= 100 * 0.9 ** 1 * 0.75 * 0.9 * 0.9).all()


@pytest.mark.parametrize("fused", [True, False])
def test_eager_crop_sizes_and_image_scale(fused):
    rgb, dmm = blocks_frame(0)
    for (ch, cw), (ih, iw) in zip(augment.CROP_SIZES, ((64, 96), (96, 128), (128, 160))):
        o = eager_augment(rgb, dmm, [1, 1], crop_sizes=((ch, cw),), fused=fused)
        assert o["depth"].shape == (1, ch, cw, 1) and o["image"].shape == (1, ih, iw, 3)


# ------------------------------------------------------------------------------------------------ tf.data


def test_pipeline_geometric_consistency_blocks(root):
    allowed = np.unique(np.concatenate([blocks_frame(s)[1].ravel() for s in range(4)]).astype(np.float32) / 1000)
    n = 0
    for e in elements(pipeline_batches(root, "blocks", n_batches=3, seed=1, color_prob=0.0)):
        check_block_consistency(e["image"], e["depth"])
        check_values_subset(e["depth"], allowed)
        n += 1
    assert n == 6


def test_pipeline_radial_intrinsics_and_invalid_ring(root):
    for seed in (0, 1):
        for e in elements(pipeline_batches(root, "radial", n_batches=2, seed=seed)):
            check_radial(e["depth"], e["intrinsics"])


def test_pipeline_valid_mask_and_no_nan_inputs(root):
    for e in elements(pipeline_batches(root, "blocks", n_batches=2, seed=2)):
        assert "grad_x" not in e and "grad_y" not in e  # the losses derive their targets from depth
        np.testing.assert_array_equal(e["valid"], (e["depth"] > 0).astype(np.float32))
        assert np.isfinite(e["image"]).all() and np.isfinite(e["depth"]).all()
        assert 0 <= e["image"].min() and e["image"].max() <= 255


def test_pipeline_fixed_seed_same_batches(root):
    a = pipeline_batches(root, "blocks", n_batches=3, seed=11)
    b = pipeline_batches(root, "blocks", n_batches=3, seed=11)
    c = pipeline_batches(root, "blocks", n_batches=3, seed=12)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert any(x["image"].shape != z["image"].shape or not np.array_equal(x["image"], z["image"])
               for x, z in zip(a, c))


def test_fused_equals_step_by_step():
    """rcrop_batch == rotate -> flip -> crop (depth exactly up to rare float ties; image close)."""
    rgb, dmm = blocks_frame(3)
    image = tf.constant(rgb, tf.float32)
    depth = tf.constant(dmm[..., None], tf.float32) / 1000.0
    for angle, flipped in ((0.0, False), (0.0, True), (0.03, False), (-0.04, True)):
        seed = [9, int(flipped)]
        fi, fd, fk, (ch, cw) = augment.rcrop_batch(image[None], depth[None], K[None], tf.constant([angle]),
                                                   tf.constant([flipped]), seed)
        ri, rd = augment.rotate(image, depth, angle, (K[2], K[3]))
        k = K
        if flipped:
            ri, rd, k = augment.flip(ri, rd, K)
        s = augment.split_seed(seed, 3)
        b = tf.shape(fd)[0]
        oy = tf.random.stateless_uniform([b], s[1], 0, H - ch + 1, dtype=tf.int32)
        ox = tf.random.stateless_uniform([b], s[2], 0, W - cw + 1, dtype=tf.int32)
        ri, rd, rk = augment.crop_batch(ri[None], rd[None], k[None], ch, cw, oy, ox)
        np.testing.assert_allclose(fk.numpy(), rk.numpy())
        same = fd.numpy() == rd.numpy()
        assert same.all() if angle == 0 else same.mean() > 0.999
        ih, iw = augment.image_size_for_crop(ch, cw)
        ri = tf.image.resize(ri, [ih, iw]).numpy()
        if angle == 0:
            np.testing.assert_allclose(fi.numpy(), ri, atol=0.51)  # uint8 warp rounds


def backproject(depth, k):
    """[H, W, 3] camera-frame points of a depth map [H, W] with intrinsics fx, fy, cx, cy."""
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    fx, fy, cx, cy = np.asarray(k, np.float64)
    return np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], -1)


@pytest.mark.parametrize("stride", [2, 4])
def test_depth_stride_is_the_subsampled_crop(stride):
    """rcrop_batch(depth_stride=s): depth == the stride-1 crop[::s, ::s], same image, and intrinsics of the
    subsampled grid: every pixel back-projects to the same 3-D point as its stride-1 pixel (what VNL uses)."""
    rgb, dmm = radial_frame()
    image = tf.constant(rgb)[None]
    depth = tf.constant(dmm[..., None], tf.float32)[None] / 1000.0
    for angle, flipped in ((0.0, False), (0.03, True)):
        args = (image, depth, K[None], tf.constant([angle]), tf.constant([flipped]), [5, int(flipped)])
        i1, d1, k1, hw1 = augment.rcrop_batch(*args)
        i2, d2, k2, hw2 = augment.rcrop_batch(*args, depth_stride=stride)
        assert [int(x) for x in hw1] == [int(x) for x in hw2]
        np.testing.assert_array_equal(i2.numpy(), i1.numpy())
        sub = d1.numpy()[:, ::stride, ::stride]
        assert d2.shape == sub.shape
        assert (d2.numpy() == sub).mean() > 0.999  # nearest sampling: equal up to rare float ties
        np.testing.assert_allclose(k2.numpy(), k1.numpy() / stride, rtol=1e-6)
        p1 = backproject(d1.numpy()[0, ..., 0], k1.numpy()[0])[::stride, ::stride]
        p2 = backproject(d2.numpy()[0, ..., 0], k2.numpy()[0])
        same = (d2.numpy()[0, ..., 0] == sub[0, ..., 0]) & (sub[0, ..., 0] > 0)
        np.testing.assert_allclose(p2[same], p1[same], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="depth_stride"):
        augment.rcrop_batch(*args, depth_stride=0)


def test_pipeline_depth_stride(root):
    """Through tf.data: the same batches as stride 1, the targets on every 2nd pixel, valid recomputed on that
    grid."""
    a = pipeline_batches(root, "radial", n_batches=2, seed=3)
    b = pipeline_batches(root, "radial", n_batches=2, seed=3, depth_stride=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(y["image"], x["image"])
        assert (y["depth"] == x["depth"][:, ::2, ::2]).mean() > 0.999
        np.testing.assert_allclose(y["intrinsics"], x["intrinsics"] / 2, rtol=1e-6)
        np.testing.assert_array_equal(y["valid"], (y["depth"] > 0).astype(np.float32))


@pytest.mark.parametrize("prob", [0.0, 0.5, 1.0])
def test_color_table_equals_color_augment(prob):
    """The pipeline's table form: the same values as color_augment up to pow's last bit, the same draws."""
    x = tf.constant(np.random.default_rng(3).integers(0, 256, (6, 17, 23, 3)), tf.uint8)
    for seed in ([1, 2], [7, 9], [123, 4]):
        ref = augment.color_augment(tf.cast(x, tf.float32), seed, prob=prob).numpy()
        new = augment.color_augment_table(x, seed, prob=prob).numpy()
        assert new.dtype == np.float32 and new.shape == ref.shape
        np.testing.assert_allclose(new, ref, rtol=0, atol=1e-4)
        if prob == 0.0:
            np.testing.assert_array_equal(new, x.numpy().astype(np.float32))
        np.testing.assert_array_equal(augment.color_augment_table(tf.cast(x, tf.float32), seed, prob=prob), new)
