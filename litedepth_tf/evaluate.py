"""Evaluate a LiteDepth model (Keras `.weights.h5` or `.tflite`) on a split with the MAI 2022 metrics.

    python -m litedepth_tf.evaluate --weights runs/demo/best.weights.h5 --data_root data/synthetic \\
        --split local_val [--model student] [--max_images N] [--out eval.json] [--nobaseline] \\
        [--baseline_split train] [--save_predictions DIR]
    python -m litedepth_tf.evaluate --tflite model.tflite --data_root data/synthetic --split local_val \\
        --compare_to eval_keras.json

Exactly one of ``--weights`` / ``--tflite``. Keras weights are loaded into the ``--model`` preset and run through
the deploy view (the same [1,480,640,3] -> [1,480,640,1] graph that is exported); a `.tflite` runs in the LiteRT
interpreter. Prints the metrics of the model and of a constant median-depth baseline, and the mean host latency
per image (not the challenge's Raspberry Pi runtime). ``--out`` writes the JSON report atomically (a write that
fails, e.g. on a full disk, is one line naming the file and what is intact, exit 2, no partial file);
``--compare_to`` exits 1 unless every metric is within ``--compare_tol`` of another report (e.g. a .tflite
against its Keras model). Library: `litedepth_tf.evaluation.evaluator.evaluate_model`.

Other data sets (`litedepth_tf.data.datasets`): ``--dataset nyu|kitti|diode|folder`` (default mai2022) lists and
decodes the preset's files, runs the model at its frame size and adds the standard metrics of the public
toolboxes (abs_rel, sq_rel, rmse, rmse_log, log10, silog, delta1..3 on the evaluation crop and valid range, per
image then the mean) to the MAI metrics:

    python -m litedepth_tf.evaluate --weights W --dataset nyu --data_root nyu_depth_v2/official_splits/test \
        --split_file nyu_test.txt
    python -m litedepth_tf.evaluate --weights W --model student_80m --dataset kitti --data_root kitti \
        --split_file kitti_eigen_test.txt [--eval_crop eigen]

``--split_file`` (``rgb depth [focal]`` per line, relative to ``--data_root``; ``None`` lines skipped and counted),
``--eval_crop none|eigen|garg`` (default: the preset's), ``--align none|median``, and for ``folder`` (or to
override a preset) ``--depth_scale``, ``--depth_format``, ``--max_depth``, ``--intrinsics``.
"""

from __future__ import annotations

import os

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import WriteError, atomic_write_json, check_writable
from litedepth_tf.data import datasets
from litedepth_tf.evaluation.evaluator import LAYOUT, evaluate_model, format_table, print_comparison, read_report


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    cli.define_model_flags(fv)
    flags.DEFINE_string("data_root", None, f"Data root: {LAYOUT}.", **d)
    flags.DEFINE_string("split", None, "Split folder under --data_root to evaluate (default: the dataset's "
                        "validation split: local_val for mai2022).", **d)
    flags.DEFINE_integer("max_images", 0, "Evaluate the first N images (0 = all).", **d)
    flags.DEFINE_string("out", None, "Write the JSON report here (atomically).", **d)
    flags.DEFINE_bool("baseline", True, "Also score the constant median-depth baseline.", **d)
    flags.DEFINE_string("baseline_split", None, "Split whose median GT depth is the baseline's constant (default: the "
                        "dataset's training split: train for mai2022).", **d)
    flags.DEFINE_string("save_predictions", None, "Write predictions as uint16 millimetre PNGs into this folder.", **d)
    flags.DEFINE_integer("threads", None, "TFLite interpreter threads (default: the interpreter's).", **d)
    flags.DEFINE_string("compare_to", None, "A JSON report of this command (e.g. the Keras model's): exit 1 unless "
                        "every metric is within --compare_tol of it.", **d)
    flags.DEFINE_float("compare_tol", 1e-3, "Absolute tolerance per metric for --compare_to.", **d)
    datasets.define_dataset_flags(fv)
    flags.DEFINE_enum("eval_crop", None, list(datasets.EVAL_CROPS), "Evaluation crop of the standard metrics "
                      "(default: the dataset's: nyu eigen, kitti garg, else none).", **d)
    flags.DEFINE_enum("align", "none", ["none", "median"], "Median-scale each prediction to its GT before the "
                      "standard metrics (relative-depth models).", **d)
    return fv


def main(argv, fv=None):
    fv = flags.FLAGS if fv is None else fv
    path = cli.model_path(fv)
    if not fv.data_root:
        raise cli.InputError(f"--data_root is required ({LAYOUT})")
    # output folders first: an unwritable one is an error now, not after the whole evaluation
    if fv.save_predictions:
        check_writable(fv.save_predictions, what="--save_predictions folder")
    if fv.out:
        check_writable(os.path.dirname(os.path.abspath(fv.out)), what="--out folder")
    preset = datasets.preset_from_flags(fv)
    split = None if fv.split_file else (fv.split or preset.splits[1])
    try:
        report = evaluate_model(path, fv.data_root, split, fv.max_images, fv.model,
                                baseline=fv.baseline, baseline_split=fv.baseline_split or preset.splits[0],
                                save_predictions=fv.save_predictions, num_threads=fv.threads, dataset=preset,
                                split_file=fv.split_file, eval_crop=fv.eval_crop, align=fv.align)
    except WriteError as err:  # a --save_predictions PNG
        out = f"; --out {fv.out} was not written" + (" (its previous version is unchanged)"
                                                      if os.path.exists(fv.out) else "") if fv.out else ""
        raise WriteError(f"{err}; the prediction PNGs written before it are complete{out}", err.errno,
                         err.filename) from None
    print(format_table(report))
    if fv.out:
        atomic_write_json(fv.out, report)  # WriteError names the file and says whether an old report is intact
        print(f"wrote {fv.out}")
    if fv.compare_to:
        try:
            reference = read_report(fv.compare_to)
        except ValueError as err:
            raise cli.InputError(str(err)) from None
        if not print_comparison(report, reference, fv.compare_to, fv.compare_tol):
            return cli.EXIT_FAILED
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
