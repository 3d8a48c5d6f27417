"""Validate an RGB-D data set and report every bad file.

    python -m litedepth_tf.data_check --data_root data/synthetic [--splits train,local_val] [--size 480x640]

``DATA_ROOT/<split>/{rgb,depth}/*.png`` (any split names; by default every sub-folder that has ``rgb/`` and
``depth/``, or the root itself if it has them). Per pair it checks: both files present (paired by file stem),
PNG signature, bit depth and channels from the PNG header (RGB: 8-bit, 3 channels; depth: 16-bit, 1 channel),
full decodability, equal sizes (and ``--size``), valid-pixel fraction (0 < depth <= ``--max_depth``; an
all-invalid depth map is an error, below ``--min_valid`` a warning) and depth range. Prints a summary table per
split, then every problem; exit 1 naming all bad files if any, 2 if the folder is not a data set, else 0.
Library: `litedepth_tf.data.check`.
"""

from __future__ import annotations

import os

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.data.check import check_dataset, format_table


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("data_root", None, "Data set folder (ROOT/<split>/{rgb,depth}/*.png).", **d)
    flags.DEFINE_list("splits", None, "Split folders to check (default: every one with rgb/ and depth/).", **d)
    flags.DEFINE_string("size", f"{INPUT_HEIGHT}x{INPUT_WIDTH}", "Expected frame size HxW, or 'any'.", **d)
    flags.DEFINE_float("max_depth", MAX_DEPTH, "Depth beyond this (metres) counts as invalid.", **d)
    flags.DEFINE_float("min_valid", 0.01, "Warn below this valid-pixel fraction.", **d)
    flags.DEFINE_integer("workers", 2, "Threads decoding files.", **d)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **d)
    return fv


def parse_size(text: str):
    if text == "any":
        return None
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise cli.InputError(f"--size must be HxW (e.g. 480x640) or 'any', got {text!r}") from None
    return h, w


def main(argv, fv=None):
    fv = flags.FLAGS if fv is None else fv
    if not fv.data_root:
        raise cli.InputError("--data_root is required (the data set folder)")
    if not os.path.isdir(fv.data_root):
        raise cli.InputError(f"--data_root {fv.data_root} is not a directory")
    report = check_dataset(fv.data_root, fv.splits, parse_size(fv.size), fv.max_depth, fv.min_valid, fv.workers,
                           fv.progress)
    if not report:
        raise cli.InputError(f"no split with rgb/ and depth/ under {fv.data_root}")
    print(format_table(report))
    for e in report.values():
        for w in e["warnings"]:
            print(f"warning: {w}")
    for e in report.values():
        for m in e["errors"]:
            print(f"error: {m}")
    bad = [f for e in report.values() for f in e["bad_files"]]
    if bad:
        print(f"FAILED: {len(bad)} bad file(s):\n" + "\n".join(f"  {f}" for f in bad))
        return cli.EXIT_FAILED
    print(f"OK: {sum(e['pairs'] for e in report.values())} pairs checked")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
