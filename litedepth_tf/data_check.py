"""Validate an RGB-D data set and report every bad file.

    python -m litedepth_tf.data_check --data_root data/synthetic [--splits train,local_val] [--size 480x640]

``DATA_ROOT/<split>/{rgb,depth}/*.png`` (any split names; by default every sub-folder that has ``rgb/`` and
``depth/``, or the root itself if it has them). Per pair it checks: both files present (paired by file stem),
PNG signature, bit depth and channels from the PNG header (RGB: 8-bit, 3 channels; depth: 16-bit, 1 channel),
full decodability, equal sizes (and ``--size``), valid-pixel fraction (0 < depth <= ``--max_depth``; an
all-invalid depth map is an error, below ``--min_valid`` a warning) and depth range. Prints a summary table per
split, then every problem; exit 1 naming all bad files if any, 2 if the folder is not a data set, else 0.
Library: `litedepth_tf.data.check`.

Other data sets: ``--dataset nyu|kitti|diode|folder`` (`litedepth_tf.data.datasets`; default mai2022) checks the
preset's layout (or ``--split_file``) with its depth scale, frame size (KITTI: at least the 352x1216 crop), valid
range and valid-fraction warning level (KITTI's ~5 % LiDAR ground truth is sparse, not invalid), and checks that
each split's depth values are plausible for the scale: e.g. KITTI (x256) read with ``--depth_scale=1000`` is an
error that names the likely right scale.

    python -m litedepth_tf.data_check --dataset kitti --data_root kitti --split_file kitti_eigen_test.txt
"""

from __future__ import annotations

import os

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.data import datasets
from litedepth_tf.data.check import check_dataset, format_table


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("data_root", None, "Data set folder (ROOT/<split>/{rgb,depth}/*.png).", **d)
    flags.DEFINE_list("splits", None, "Split folders to check (default: every one with rgb/ and depth/).", **d)
    flags.DEFINE_string("size", None, f"Expected frame size HxW, or 'any' (default: the dataset's; mai2022 "
                        f"{INPUT_HEIGHT}x{INPUT_WIDTH}).", **d)
    flags.DEFINE_float("min_valid", None, "Warn below this valid-pixel fraction (default: the dataset's; 0.01, "
                       "kitti 0.005).", **d)
    flags.DEFINE_integer("workers", 2, "Threads decoding files.", **d)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **d)
    datasets.define_dataset_flags(fv, "Check the samples of this split list (rgb depth [focal] per line) instead of the "
                         "split folders.")
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
    preset = datasets.preset_from_flags(fv)
    size = "preset" if fv.size is None else parse_size(fv.size)
    if preset.name == datasets.MAI2022.name and not fv.split_file:  # the MAI layout, checked as it always was
        report = check_dataset(fv.data_root, fv.splits, (INPUT_HEIGHT, INPUT_WIDTH) if size == "preset" else size,
                               MAX_DEPTH if fv.max_depth is None else fv.max_depth,
                               0.01 if fv.min_valid is None else fv.min_valid, fv.workers, fv.progress)
    else:
        report = datasets.check_dataset(preset, fv.data_root, fv.splits, fv.split_file, size, fv.min_valid,
                                        fv.workers, fv.progress)
    if not report:
        raise cli.InputError(f"no split with rgb/ and depth/ under {fv.data_root}")
    if all(e["pairs"] == 0 and e["errors"] for e in report.values()) and preset.name != datasets.MAI2022.name:
        raise cli.InputError("; ".join(e["errors"][0] for e in report.values()))
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
    none = sum(e.get("skipped_none", 0) for e in report.values())
    print(f"OK: {sum(e['pairs'] for e in report.values())} pairs checked"
          + (f" ({none} split-file line(s) without ground truth skipped)" if none else ""))
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
