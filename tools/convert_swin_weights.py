"""Convert an official PyTorch Swin Transformer checkpoint (.pth) into a .npz for the teacher's encoder.

    python tools/convert_swin_weights.py --pth swin_large_patch4_window7_224_22k.pth --preset large \\
        --out weights/swin_large_w7_22k.npz

torch is optional (a small reader handles PyTorch's zip format). The name mapping, the accepted checkpoints and
the strict check are described in `litedepth_tf.models.swin_convert`.
"""

from __future__ import annotations

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.models.swin_convert import convert_file


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("pth", None, "Official Swin checkpoint (.pth).", **d)
    flags.DEFINE_string("out", None, "Output .npz (written atomically).", **d)
    flags.DEFINE_enum("preset", None, ["micro", "tiny", "base", "large"], "Checked against the checkpoint.", **d)
    flags.DEFINE_bool("check", True, "Load the result strictly into a built encoder (--nocheck skips it).", **d)
    return fv


def main(argv, fv=None) -> int:
    fv = flags.FLAGS if fv is None else fv
    for name in ("pth", "out"):
        if not fv[name].value:
            raise cli.InputError(f"--{name} is required")
    for line in convert_file(fv.pth, fv.out, fv.preset, check=fv.check):
        print(line)
    print(f"wrote {fv.out}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
