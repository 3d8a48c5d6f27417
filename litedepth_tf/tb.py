"""TensorBoard helpers: scalars and depth images (one shared colour scale for GT and prediction, an error map).

    writer = tf.summary.create_file_writer(run_dir)
    write_scalars(writer, step, {"loss/si": 0.3, "lr": 1e-3})
    write_depth_images(writer, step, "train", rgb, gt, pred)        # one image, NumPy, any sizes

Panels (each `[1, H, W, 3]` uint8 at the GT's resolution):
  `<tag>/rgb`, `<tag>/gt` and `<tag>/pred` (magma, the same [vmin, vmax] for both: the 2nd..98th percentile of the
  valid GT, so colours are comparable), `<tag>/abs_rel_error` (|pred - gt| / gt on valid pixels, 0..0.5 -> black
  to white through inferno; invalid GT pixels are drawn blue).

Headless check of a run's panels (the four side by side, read back from the event files, written as one PNG):

    python -m litedepth_tf.tb --logdir runs/demo --tag val --step 3600 --out docs/tensorboard_val_3600.png
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

INVALID_RGB = (40, 60, 160)


def _lut(name: str) -> np.ndarray:
    try:
        from matplotlib import colormaps

        return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    except Exception:  # noqa: BLE001 - matplotlib missing: a grey ramp still shows structure
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)


def colorize(values, vmin: float, vmax: float, cmap: str = "magma", mask=None) -> np.ndarray:
    """[H, W] (or [H, W, 1]) floats -> [H, W, 3] uint8 through a matplotlib colour map; `mask` False -> blue."""
    v = np.asarray(values, np.float32)
    if v.ndim == 3:
        v = v[..., 0]
    t = np.clip((v - vmin) / max(vmax - vmin, 1e-6), 0.0, 1.0)
    t = np.nan_to_num(t, nan=0.0)
    out = _lut(cmap)[(t * 255).astype(np.int32)]
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.ndim == 3:
            m = m[..., 0]
        out[~m] = INVALID_RGB
    return out


def depth_scale(gt, valid=None, lo: float = 2.0, hi: float = 98.0):
    """The shared [vmin, vmax] for GT and prediction: percentiles of the valid GT (or (0, 1) if none)."""
    gt = np.asarray(gt, np.float32)
    valid = gt > 0 if valid is None else np.asarray(valid) > 0
    vals = gt[valid]
    if vals.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(vals, [lo, hi])
    return float(vmin), float(max(vmax, vmin + 1e-3))


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
    with writer.as_default():
        for name, value in scalars.items():
            tf.summary.scalar(name, float(value), step=int(step))


def write_depth_images(writer, step: int, tag: str, rgb, gt, pred) -> dict:
    """Writes the four panels for one sample (arrays for one image, no batch axis); returns them."""
    panels = depth_panels(rgb, gt, pred)
    with writer.as_default():
        for name, img in panels.items():
            tf.summary.image(f"{tag}/{name}", img[None], step=int(step))
    return panels


def _event_files(log_dir) -> list:
    import glob
    import os

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


def main(argv=None) -> int:
    import argparse
    import sys

    from litedepth_tf.fsutil import atomic_write_bytes

    ap = argparse.ArgumentParser(description="Write a run's TensorBoard depth panels (RGB | GT | prediction | "
                                             "abs-rel error) side by side as one PNG.")
    ap.add_argument("--logdir", required=True, help="run directory (event files anywhere below it)")
    ap.add_argument("--tag", default="val", help="panel group: val or train")
    ap.add_argument("--step", type=int, default=None, help="default: the last step with all four panels")
    ap.add_argument("--out", required=True, help="PNG to write (atomically)")
    args = ap.parse_args(argv)
    try:
        step, panels = read_panels(args.logdir, args.tag, args.step)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    h = max(p.shape[0] for p in panels.values())
    row = np.concatenate([np.pad(panels[n], ((0, h - panels[n].shape[0]), (0, 4), (0, 0)), constant_values=255)
                          for n in PANELS], axis=1)[:, :-4]
    atomic_write_bytes(args.out, tf.io.encode_png(row).numpy())
    print(f"{args.out}: {args.tag} panels {' | '.join(PANELS)} at step {step}, {row.shape[1]}x{row.shape[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
