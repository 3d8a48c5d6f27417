"""Input-pipeline throughput vs the student's train step, in one run (library:
`litedepth_tf.training.pipeline_benchmark`).

    python export/benchmark_pipeline.py [--data_root data/synthetic] [--batch_size 16] [--steps 60]
                                        [--train_steps 5] [--cache_in_memory] [--out artifacts/benchmark_pipeline.json]

* pipeline images/s: ``make_dataset(root, "train", batch_size, training=True)`` (decode + R-crop + colour aug +
  gradient targets), warm-up batches excluded;
* train-step images/s: ``build_student()`` forward + SI-log loss + Adam update at ``batch_size``, timed at each
  R-crop size (one crop size per batch, sizes drawn uniformly, so the mean is total images / total time).
The target is pipeline >= 3x train step. If ``--data_root`` has no data, a small synthetic set is generated there
(``litedepth_tf.data.synthetic.ensure_synthetic``). Numbers depend on the machine and its load: the JSON records
the CPU count and load average.

Per data set preset: ``--dataset mai2022,nyu,kitti,diode`` measures each preset's training pipeline (its
decoding: NYU JPEG + PNG16, KITTI PNG + sparse PNG16 with the 352x1216 crop cut in the graph, DIODE converted
PNGs at 768x1024; its R-crop sizes) and train step (at its crops' network sizes). mai2022 reads ``--data_root``;
the others read small fixtures in their real format (`litedepth_tf.data.fixtures`, ``--gen_train`` frames,
written once under ``--fixture_dir``).

    python export/benchmark_pipeline.py --dataset mai2022,nyu,kitti,diode --notrain_step
"""

from __future__ import annotations

import os

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json
from litedepth_tf.data import datasets
from litedepth_tf.training.pipeline_benchmark import benchmark_layout, benchmark_presets


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_string("data_root", "data/synthetic", "Data root (generated if the split is missing).", **d)
    flags.DEFINE_string("split", "train", "Split to read.", **d)
    flags.DEFINE_integer("batch_size", 16, "Batch size.", **d)
    flags.DEFINE_integer("steps", 60, "Timed pipeline batches (after 5 warm-up batches).", **d)
    flags.DEFINE_integer("train_steps", 5, "Timed train steps per crop size.", **d)
    flags.DEFINE_integer("gen_train", 64, "Frames to generate if --data_root has no such split.", **d)
    flags.DEFINE_bool("train_step", True, "Also time the train step (--notrain_step skips it).", **d)
    flags.DEFINE_bool("cache_in_memory", False, "Decode the frames once into memory, as flags/demo.cfg does.", **d)
    flags.DEFINE_string("out", "artifacts/benchmark_pipeline.json", "Where to write the JSON results.", **d)
    flags.DEFINE_list("dataset", None, "Data set presets to measure (mai2022,nyu,kitti,diode); default: the MAI "
                      "layout of --data_root only.", **d)
    flags.DEFINE_string("fixture_dir", "artifacts/fixtures", "Where the other presets' fixtures are written once.",
                        **d)
    return fv


def main(argv, a):
    if not a.dataset:
        res = benchmark_layout(a.data_root, a.split, a.batch_size, a.steps, a.train_steps, a.gen_train, a.train_step,
                               a.cache_in_memory)
    else:
        unknown = [n for n in a.dataset if n not in datasets.PRESETS or n == datasets.FOLDER.name]
        if unknown:
            raise cli.InputError(f"--dataset: {', '.join(unknown)} (measurable presets: mai2022, nyu, kitti, diode)")
        res = dict(batch_size=a.batch_size, steps=a.steps, cpu_count=os.cpu_count(), loadavg=list(os.getloadavg()),
                   cache_in_memory=a.cache_in_memory,
                   presets=benchmark_presets(a.dataset, a.data_root, a.split, a.batch_size, a.steps, a.train_steps,
                                             a.gen_train, a.fixture_dir, a.train_step, a.cache_in_memory))
    if a.out:
        atomic_write_json(a.out, res)
        print(f"wrote {a.out}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
