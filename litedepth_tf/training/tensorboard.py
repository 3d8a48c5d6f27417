"""TensorBoard helpers: scalars and depth images (one shared colour scale for GT and prediction, an error map).

    writer = create_writer(run_dir)                                   # tf.summary.create_file_writer
    write_scalars(writer, step, {"loss/si": 0.3, "lr": 1e-3})
    write_depth_images(writer, step, "train", rgb, gt, pred)        # one image, NumPy, any sizes
    flush(writer)

A write of the events file that fails (TensorFlow raises it from the summary op that fills the queue, or from
the flush; a full disk gives RESOURCE_EXHAUSTED) becomes `common.files.WriteError` naming the events file.

Panels (each `[1, H, W, 3]` uint8 at the GT's resolution):
  `<tag>/rgb`, `<tag>/gt` and `<tag>/pred` (magma, the same [vmin, vmax] for both: the 2nd..98th percentile of the
  valid GT, so colours are comparable), `<tag>/abs_rel_error` (|pred - gt| / gt on valid pixels, 0..0.5 -> black
  to white through inferno; invalid GT pixels are drawn blue).

Headless check of a run's panels (the four side by side, read back from the event files, written as one PNG):

    python -m litedepth_tf.panels --run_dir runs/demo --tag val --step 3600 --out docs/tensorboard_val_3600.png
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re

import numpy as np
import tensorflow as tf

from litedepth_tf.common import files as fsutil
from litedepth_tf.common.colormap import colorize, depth_scale

log = logging.getLogger("litedepth_tf.training.tensorboard")
_EVENTS_FILE = re.compile(r"(\S*events\.out\.tfevents\.[^\s;]*)")


@contextlib.contextmanager
def _writing(log_dir=None):
    """TensorFlow errors of the summary ops / flush -> WriteError naming the events file (from the message)."""
    try:
        yield
    except tf.errors.OpError as err:
        m = _EVENTS_FILE.search(str(err))
        where = m.group(1) if m else f"in {log_dir or 'the TensorBoard folder'}"
        raise fsutil.write_error(where, err, what="TensorBoard events") from None


def create_writer(log_dir):
    with _writing(log_dir):
        return tf.summary.create_file_writer(os.fspath(log_dir))


def flush(writer, quiet: bool = False) -> None:
    """Flushes `writer`; with `quiet` (cleaning up after another error) a failure is only logged."""
    try:
        with _writing():
            writer.flush()
    except fsutil.WriteError as err:
        if not quiet:
            raise
        log.warning("%s", err)


def _resize(x, hw, method):
    x = np.asarray(x, np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[:2] == tuple(hw):
        return x
    return tf.image.resize(x[None], hw, method=method)[0].numpy()


def depth_panels(rgb, gt, pred, max_rel_error: float = 0.5) -> dict:
    """NumPy panels (uint8 [H, W, 3]) at the GT's resolution: rgb, gt, pred, abs_rel_error."""
    gt = np.asarray(gt, np.float32)
    gt = gt[..., 0] if gt.ndim == 3 else gt
    hw = gt.shape
    rgb = np.clip(_resize(rgb, hw, "bilinear"), 0, 255).astype(np.uint8)
    pred = _resize(pred, hw, "bilinear")[..., 0]
    valid = gt > 0
    vmin, vmax = depth_scale(gt, valid)
    err = np.where(valid, np.abs(pred - gt) / np.maximum(gt, 1e-6), 0.0)
    return {
        "rgb": rgb,
        "gt": colorize(gt, vmin, vmax, mask=valid),
        "pred": colorize(pred, vmin, vmax),
        "abs_rel_error": colorize(err, 0.0, max_rel_error, cmap="inferno", mask=valid),
    }


def write_scalars(writer, step: int, scalars: dict) -> None:
    with _writing(), writer.as_default():
        for name, value in scalars.items():
            tf.summary.scalar(name, float(value), step=int(step))


def write_depth_images(writer, step: int, tag: str, rgb, gt, pred) -> dict:
    """Writes the four panels for one sample (arrays for one image, no batch axis); returns them."""
    panels = depth_panels(rgb, gt, pred)
    with _writing(), writer.as_default():
        for name, img in panels.items():
            tf.summary.image(f"{tag}/{name}", img[None], step=int(step))
    return panels


def _event_files(log_dir) -> list:
    return sorted(glob.glob(os.path.join(os.fspath(log_dir), "**", "events.out.tfevents.*"), recursive=True))


def _summary_values(paths):
    """(step, summary value) of every event in the event files `paths`, in order."""
    for path in paths:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                yield event.step, value


def read_events(log_dir) -> dict:
    """{tag: [(step, value or image shape)]} from the event files under `log_dir` (for tests / checks).
    Scalars give floats; images give the encoded image's (height, width) from the summary metadata."""
    out: dict = {}
    for step, value in _summary_values(_event_files(log_dir)):
        tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
        plugin = value.metadata.plugin_data.plugin_name
        if plugin == "images" and tensor is not None:  # [width, height, png bytes...]
            item = (int(tensor[1]), int(tensor[0]))
        elif tensor is not None and tensor.size == 1:
            item = float(tensor.reshape(()))
        else:
            item = float(value.simple_value)
        out.setdefault(value.tag, []).append((step, item))
    return out


PANELS = ("rgb", "gt", "pred", "abs_rel_error")


def read_panels(log_dir, tag: str, step: int | None = None) -> tuple[int, dict]:
    """(step, {panel: HxWx3 uint8}) of the `<tag>/<panel>` images in the event files under `log_dir`, at `step`
    (None: the last step that has all four). Raises ValueError naming what is missing."""
    paths = _event_files(log_dir)
    if not paths:
        raise ValueError(f"{log_dir}: no TensorBoard event files")
    found: dict = {}  # step -> {panel: PNG bytes}; only the chosen step is decoded
    for event_step, value in _summary_values(paths):
        t, _, name = value.tag.partition("/")
        if t == tag and name in PANELS and value.HasField("tensor"):
            found.setdefault(event_step, {})[name] = tf.make_ndarray(value.tensor)[2]  # [width, height, png...]
    complete = sorted(s for s, p in found.items() if len(p) == len(PANELS))
    if step is None and complete:
        step = complete[-1]
    if step not in complete:
        raise ValueError(f"{log_dir}: no complete '{tag}/*' panels at step {step}; steps with all four: {complete}")
    return step, {n: tf.io.decode_png(png, channels=3).numpy() for n, png in found[step].items()}


def panel_row(panels: dict) -> np.ndarray:
    """The four panels side by side (4 white pixels between them), HxWx3 uint8."""
    h = max(p.shape[0] for p in panels.values())
    return np.concatenate([np.pad(panels[n], ((0, h - panels[n].shape[0]), (0, 4), (0, 0)), constant_values=255)
                           for n in PANELS], axis=1)[:, :-4]
