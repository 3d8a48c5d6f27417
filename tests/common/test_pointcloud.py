"""Depth + intrinsics -> 3-D points (litedepth_tf.common.pointcloud) and the binary PLY files."""

import numpy as np
import pytest

from litedepth_tf.common import pointcloud
from litedepth_tf.common.constants import MAI_INTRINSICS
from tests.helpers import read_ply


def plane_depth(h, w, intrinsics, normal, offset):
    """The z-depth of every pixel of the plane {X : normal . X = offset} seen by a pinhole camera."""
    fx, fy, cx, cy = intrinsics
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    return offset / (rays @ np.asarray(normal, np.float64))


def test_a_plane_comes_back_coplanar_with_its_normal():
    k = (300.0, 310.0, 63.5, 47.5)
    normal = np.array([0.2, -0.35, 1.0]) / np.linalg.norm([0.2, -0.35, 1.0])
    depth = plane_depth(96, 128, k, normal, 2.5).astype(np.float32)
    assert depth.min() > 1.0 and depth.max() < 5.0  # the plane fills the view, in front of the camera
    points, colors = pointcloud.backproject(depth, k)
    assert points.shape == (96 * 128, 3) and points.dtype == np.float32 and colors.dtype == np.uint8
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    assert s[2] / np.sqrt(len(points)) < 1e-5  # RMS distance to the best plane: float32 rounding only
    assert abs(abs(vt[2] @ normal) - 1) < 1e-6  # ... and that plane is the one we drew
    np.testing.assert_allclose(points @ normal, 2.5, atol=2e-6 * 5)
    np.testing.assert_array_equal(points[:, 2], depth.ravel())


def test_back_projection_by_hand_and_invalid_pixels():
    k = (2.0, 4.0, 1.0, 0.5)
    depth = np.array([[1.0, 2.0, 0.0], [np.nan, 3.0, -1.0]], np.float32)
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    points, colors = pointcloud.backproject(depth, k, rgb)
    # valid pixels (row-major): (v=0,u=0) z=1, (0,1) z=2, (1,1) z=3
    np.testing.assert_allclose(points, [[(0 - 1) * 1 / 2, (0 - 0.5) * 1 / 4, 1], [0, (0 - 0.5) * 2 / 4, 2],
                                        [0, (1 - 0.5) * 3 / 4, 3]])
    np.testing.assert_array_equal(colors, [rgb[0, 0], rgb[0, 1], rgb[1, 1]])
    with pytest.raises(ValueError, match="does not match"):
        pointcloud.backproject(depth, k, rgb[:1])


def test_intrinsics_parse_and_scale():
    assert pointcloud.parse_intrinsics("518.8579,519.4696,320,240") == MAI_INTRINSICS
    for bad in ("1,2,3", "a,b,c,d", "0,1,2,3", "1,nan,2,3"):
        with pytest.raises(ValueError, match="intrinsics"):
            pointcloud.parse_intrinsics(bad)
    assert pointcloud.default_intrinsics((480, 640)) == pytest.approx(MAI_INTRINSICS)
    fx, fy, cx, cy = pointcloud.default_intrinsics((240, 320))
    assert (fx, fy) == pytest.approx((MAI_INTRINSICS[0] / 2, MAI_INTRINSICS[1] / 2))
    assert (cx, cy) == pytest.approx((159.75, 119.75))  # pixel centres: (c + 0.5) * s - 0.5
    # the same 3-D point seen at both sizes lands on corresponding pixels
    big = pointcloud.default_intrinsics((480, 640))
    x, y, z = 0.3, -0.2, 2.0
    u_big = big[0] * x / z + big[2]
    assert fx * x / z + cx == pytest.approx((u_big + 0.5) / 2 - 0.5)


def test_ply_reads_back_with_every_vertex_and_colour():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1000, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (1000, 3), dtype=np.uint8)
    header, v = read_ply(pointcloud.ply_bytes(points, colors))
    assert "element vertex 1000" in header and header[-1] == "end_header"
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], -1), points)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], -1), colors)
    _, empty = read_ply(pointcloud.ply_bytes(np.zeros((0, 3)), np.zeros((0, 3))))
    assert len(empty) == 0
    with pytest.raises(ValueError, match="3 points but 2 colours"):
        pointcloud.ply_bytes(np.zeros((3, 3)), np.zeros((2, 3)))
