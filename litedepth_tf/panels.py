"""Write a run's TensorBoard depth panels (RGB | GT | prediction | abs-rel error) side by side as one PNG.

    python -m litedepth_tf.panels --run_dir runs/demo --tag val [--step 3600] --out docs/tensorboard_val_3600.png

Reads the event files under ``--run_dir`` (no TensorBoard server needed), at ``--step`` or the last step that has
all four panels, and writes the PNG atomically.
"""

from __future__ import annotations

import tensorflow as tf
from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_bytes
from litedepth_tf.training.tensorboard import PANELS, panel_row, read_panels


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("run_dir", None, "Training run folder (event files anywhere below it).", **d)
    flags.DEFINE_string("tag", "val", "Panel group: val or train.", **d)
    flags.DEFINE_integer("step", None, "Step to draw (default: the last step with all four panels).", **d)
    flags.DEFINE_string("out", None, "PNG to write (atomically).", **d)
    return fv


def main(argv, fv=None) -> int:
    fv = flags.FLAGS if fv is None else fv
    for name in ("run_dir", "out"):
        if not fv[name].value:
            raise cli.InputError(f"--{name} is required")
    try:
        step, panels = read_panels(fv.run_dir, fv.tag, fv.step)
    except ValueError as err:
        raise cli.InputError(str(err)) from None
    row = panel_row(panels)
    atomic_write_bytes(fv.out, tf.io.encode_png(row).numpy())
    print(f"{fv.out}: {fv.tag} panels {' | '.join(PANELS)} at step {step}, {row.shape[1]}x{row.shape[0]}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
