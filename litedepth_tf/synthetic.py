"""Generate the offline synthetic RGB-D data set in the MAI 2022 layout (ray-cast rooms and streets).

    python -m litedepth_tf.synthetic --out data/synthetic --train 400 --val 200 --seed 0

Writes ``OUT/{train,local_val}/{rgb,depth}/NNNNN.png`` (RGB 480x640, uint16 millimetre depth, 0 = invalid) and
``OUT/synthetic.json`` last. Every frame depends only on (seed, split, index): any number of workers writes the
same bytes. Library: `litedepth_tf.data.synthetic`.
"""

from __future__ import annotations

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.data.synthetic import generate


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("out", None, "Output data root (gets train/ and local_val/).", **d)
    flags.DEFINE_integer("train", 400, "Number of training frames.", lower_bound=0, **d)
    flags.DEFINE_integer("val", 200, "Number of local_val frames.", lower_bound=0, **d)
    flags.DEFINE_integer("seed", 0, "Scene seed.", **d)
    flags.DEFINE_integer("workers", None, "Processes (default: all cores).", **d)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **d)
    return fv


def main(argv, fv=None) -> int:
    fv = flags.FLAGS if fv is None else fv
    if not fv.out:
        raise cli.InputError("--out is required (the data root to write)")
    man = generate(fv.out, fv.train, fv.val, fv.seed, fv.workers, fv.progress)
    print(f"wrote {fv.train} train + {fv.val} local_val frames to {fv.out} in {man['seconds']:.1f} s "
          f"({man['frames_per_second']:.2f} frames/s, {man['workers']} workers)")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
