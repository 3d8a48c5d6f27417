"""Where a training step goes, in one run: the network alone, the step with its losses, the pipeline, the loop.

    python export/benchmark_train.py [--data_root data/synthetic] [--batch_size 16] [--step_steps 6]
                                     [--loop_steps 100] [--loop_strides 4,1] [--out artifacts/benchmark_train.json]

Prints images/s and the ratio to the network alone (the student's forward + backward + Adam with a dummy loss)
for: the train step with the four losses at ``--depth_stride`` 1 and 4, the cached training pipeline alone, and
``Trainer.fit`` at the demo's settings (flags/demo.cfg: batch 16, the three R-crops, log every 25 steps, images and
checkpoints every 600). Library: ``litedepth_tf/training/benchmark.py``. If ``--data_root`` has no data, a small
synthetic set is generated there. The machine's speed drifts with its load: compare ratios within one run.
"""

from __future__ import annotations

import os

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.data.synthetic import ensure_synthetic
from litedepth_tf.training.benchmark import format_table, run_benchmark


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_string("data_root", "data/synthetic", "Data root (generated if the train split is missing).", **d)
    flags.DEFINE_integer("gen_train", 64, "Frames to generate if --data_root has no train split.", **d)
    flags.DEFINE_integer("batch_size", 16, "Batch size.", **d)
    flags.DEFINE_integer("step_steps", 6, "Timed steps per R-crop size for the network and the step.", **d)
    flags.DEFINE_integer("pipeline_steps", 60, "Timed pipeline batches.", **d)
    flags.DEFINE_integer("loop_steps", 100, "Timed Trainer.fit steps (after --loop_warmup).", **d)
    flags.DEFINE_integer("loop_warmup", 30, "Untimed Trainer.fit steps first (tracing at every crop size).", **d)
    flags.DEFINE_list("strides", ["1", "4"], "depth_stride values of the timed step.", **d)
    flags.DEFINE_list("loop_strides", ["4", "1"], "depth_stride values of the timed loop ('' = no loop).", **d)
    flags.DEFINE_string("out", "artifacts/benchmark_train.json", "Where to write the JSON results.", **d)
    for name in ("batch_size", "step_steps", "pipeline_steps", "loop_steps", "loop_warmup"):
        flags.register_validator(name, lambda v: v > 0, message=f"--{name} must be > 0", **d)
    return fv


def main(argv, a):
    if not os.path.isdir(os.path.join(a.data_root, "train", "rgb")):
        print(f"no data under {a.data_root}/train: generating {a.gen_train} synthetic frames")
        ensure_synthetic(a.data_root, a.gen_train, max(1, a.gen_train // 4))
    try:
        strides = tuple(int(s) for s in a.strides)
        loop_strides = tuple(int(s) for s in a.loop_strides if s)
    except ValueError as err:
        raise cli.InputError(f"--strides / --loop_strides must be integers: {err}") from None
    res = run_benchmark(a.data_root, a.batch_size, strides=strides, step_steps=a.step_steps,
                        pipeline_steps=a.pipeline_steps, loop_steps=a.loop_steps, loop_warmup=a.loop_warmup,
                        loop_strides=loop_strides)
    res["data_root"] = a.data_root
    print(format_table(res))
    if a.out:
        atomic_write_json(a.out, res)
        print(f"wrote {a.out}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
