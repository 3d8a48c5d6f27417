"""Teacher size per Swin preset next to the student, at the student's input size (128x160 by default; library:
`litedepth_tf.models.summary`).

    python export/teacher_summary.py --out artifacts/teacher_summary.json [--presets micro,tiny,base,large]
                                     [--height 128 --width 160] [--noflops]

For each preset: parameters (all weights, encoder alone), the analytic multiply-accumulate count and the
TF-profiler FLOPs of one forward pass (batch 1; MACs ~= FLOPs / 2). Prints a table and writes every row to --out
(JSON, atomically).
"""

from __future__ import annotations

import sys

from absl import flags, logging

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.models.summary import check_presets, format_table, summaries


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_string("out", "artifacts/teacher_summary.json", "Where to write the JSON rows.", **d)
    flags.DEFINE_list("presets", ["micro", "tiny", "base", "large"], "Teacher presets (litedepth_tf.models.teacher).",
                      **d)
    flags.DEFINE_integer("height", 128, "Network input height (the student's 128 for a 480x640 frame).", **d)
    flags.DEFINE_integer("width", 160, "Network input width.", **d)
    flags.DEFINE_bool("flops", True, "Also count FLOPs with the TF profiler (slower for the large presets).", **d)
    return fv


def main(argv, fv):
    logging.set_verbosity(logging.ERROR)  # the TF1 profiler's deprecation warnings
    try:
        check_presets(fv.presets)
    except ValueError as err:
        raise cli.InputError(f"--presets: {err}") from None
    rows = summaries(fv.presets, fv.height, fv.width, fv.flops,
                     log=lambda r: print(f"  {r['preset']}: {r['params'] / 1e6:.2f} M params", file=sys.stderr,
                                         flush=True))
    print(format_table(rows))
    atomic_write_json(fv.out, {"rows": rows, "note": "batch 1; FLOPs = 2 x MACs (multiply + add)"})
    print(f"wrote {fv.out}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
