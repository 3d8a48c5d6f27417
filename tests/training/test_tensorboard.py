"""TensorBoard panels: one colour scale for GT and prediction, invalid pixels marked, and the headless read-back
(`python -m litedepth_tf.panels`) returns exactly what was written."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from litedepth_tf.common.colormap import INVALID_RGB
from litedepth_tf.training import tensorboard as tb
from litedepth_tf import panels as panels_cmd
from tests.helpers import call_main


def sample(seed=0, h=24, w=32):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    gt = rng.uniform(1, 10, (h, w)).astype("f4")
    gt[:3] = 0  # invalid rows
    return rgb, gt, (gt * rng.uniform(0.8, 1.2, gt.shape)).astype("f4")


def test_gt_and_pred_share_one_scale_and_invalid_is_marked():
    rgb, gt, _ = sample()
    panels = tb.depth_panels(rgb, gt, np.where(gt > 0, gt, 5.0))
    assert set(panels) == set(tb.PANELS)
    valid = gt > 0
    np.testing.assert_array_equal(panels["gt"][valid], panels["pred"][valid])  # pred == gt: same colours
    assert (panels["abs_rel_error"][~valid] == INVALID_RGB).all()
    np.testing.assert_array_equal(panels["rgb"], rgb)


def test_panels_read_back_and_cli_writes_them_side_by_side(tmp_path, capsys):
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    written = {step: tb.write_depth_images(writer, step, "val", *sample(step)) for step in (10, 20)}
    tb.write_depth_images(writer, 30, "train", *sample(3))
    writer.flush()
    step, panels = tb.read_panels(tmp_path / "run", "val")
    assert step == 20  # the last step with all four
    for name in tb.PANELS:
        np.testing.assert_array_equal(panels[name], written[20][name])  # PNG is lossless
    assert tb.read_panels(tmp_path / "run", "val", 10)[0] == 10
    with pytest.raises(ValueError, match="step 15.*10, 20"):
        tb.read_panels(tmp_path / "run", "val", 15)
    out = tmp_path / "panels.png"
    assert call_main(panels_cmd, "--run_dir", tmp_path / "run", "--out", out) == 0
    row = np.asarray(Image.open(out))
    assert row.shape == (24, 4 * 32 + 3 * 4, 3)
    np.testing.assert_array_equal(row[:, 36:68], written[20]["gt"])
    assert "at step 20" in capsys.readouterr().out
    assert call_main(panels_cmd, "--run_dir", tmp_path / "nothing", "--out", out) == 2
    assert "no TensorBoard event files" in capsys.readouterr().err
