"""Export the LiteDepth student to `.tflite` (thin CLI over `litedepth_tf.tflite.convert`).

    python export/export_tflite.py --weights runs/demo/best.weights.h5 --quant fp32 --out artifacts/litedepth_fp32.tflite
    python export/export_tflite.py --weights runs/demo/best.weights.h5 --quant fp32,fp16,int8 --data_root data/synthetic \
        --out 'artifacts/litedepth_{quant}.tflite'      # the three in one process (what `make export` runs)

Equivalent two-step route with the TensorFlow CLI:

    python export/export_tflite.py --weights ... --saved_model_dir artifacts/saved_model --out artifacts/litedepth_fp32.tflite
    tflite_convert --saved_model_dir=artifacts/saved_model --output_file=artifacts/litedepth_fp32.tflite

Without --weights a freshly initialised student is exported (for latency work). Every export is checked against
Keras with the parity helper unless --noparity.

int8 (full-integer weights and activations, calibrated on --calib_images frames of --calib_split from the evaluation
pipeline; --int8_io uint8 for uint8 input/output tensors):

    python export/export_tflite.py --weights ... --quant int8 --data_root data/synthetic \
        --out artifacts/litedepth_int8.tflite

--final_resize: the deploy graph's last op, the 32x40 -> 480x640 resize of the depth: nearest (default, the
authors' test-time resize: RESIZE_NEAREST_NEIGHBOR, exact in int8) or bilinear. --upsample (bilinear only): that
resize exported as an exact 3x3 conv + pixel shuffle (`litedepth_tf.models.upsample`) for int8 by default (auto);
`conv` does it for every mode, `resize` for none.

Other frame sizes (the deploy graph [1,H,W,3] -> [1,H,W,1], the network at the paper's ratio rounded to /32):
``--dataset kitti`` (its frame, 352x1216 -> network 96x320) or ``--input_size 352x1216``; ``--model student_80m``
for weights trained with the 80 m head (flags/kitti.cfg). int8 calibration then reads ``--data_root`` through the
dataset preset (``--calib_split`` or ``--calib_split_file``).

    python export/export_tflite.py --weights runs/kitti/best.weights.h5 --model student_80m --dataset kitti \
        --out artifacts/litedepth_kitti_fp32.tflite

After every export (all in one run, before the model card is written):
* the GPU delegate check (`litedepth_tf.tflite.gpu_check`: TensorFlow's model analyzer + the delegate's own op
  rules), printed as a compact op report; `--require_gpu_compatible` makes an op that would fall back to the CPU an
  error: exit 1 with one line naming the op(s), and nothing is written (the previous file and card stay);
* the Keras vs TFLite parity check (unless --noparity);
* the model card `<out without .tflite>.card.json` (`litedepth_tf.tflite.model_card`, written atomically): input /
  output tensors (name, shape, dtype, range, quantisation), output units, the SHA-256 of the run's flags.txt next to
  --weights, the quantisation, the parity figures, the GPU verdict and, with `--eval_report REPORT.json` (an
  `evaluate --out` report of --weights or of --out), the evaluation it passed. `predict`, `evaluate` and
  `litedepth_tf.load` refuse a file whose card contradicts it.

Quantisation report (fp32, fp16 and int8 from the same weights, evaluated on the same images, sizes, 1-thread
latency, targets; files and quant_report.json into --report_dir, default the folder of --out):

    python export/export_tflite.py --weights ... --data_root data/synthetic --report_split local_val --report_images 40

With ``--report_from DIR`` the report evaluates the three files already exported there (checked against their
model cards) instead of exporting them again; ``--compare_to runs/demo/eval_keras.json`` (an `evaluate --out`
report of --weights on the same images) exits 1 unless the fp32 file's metrics match it to --compare_tol (what
`make quant-report` runs).
"""

from __future__ import annotations

import os

import dataclasses
import sys

from absl import flags, logging

import litedepth_tf
from litedepth_tf.common import cli
from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.common.sizes import network_size, parse_hw
from litedepth_tf.data import datasets
from litedepth_tf.evaluation.evaluator import print_comparison, read_report
from litedepth_tf.evaluation.quant_report import QUANTS, format_report, quant_report, report_size
from litedepth_tf.models.upsample import apply_upsample, resolve_upsample
from litedepth_tf.tflite import gpu_check, model_card
from litedepth_tf.tflite.calibration import representative_images
from litedepth_tf.tflite.convert import build_deploy_from_weights, export_tflite
from litedepth_tf.tflite.parity import run_export_parity_test
from litedepth_tf.tflite.runtime import TFLiteModel

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "Student weights (.weights.h5) written by the trainer; none = random init.")
flags.DEFINE_string("out", "artifacts/litedepth_{quant}.tflite", "Output .tflite path (written atomically); "
                    "{quant} becomes the quantisation mode (needed when --quant lists several).")
flags.DEFINE_list("quant", ["fp32"], "Quantisation mode: fp32, fp16 or int8, or several (e.g. fp32,fp16,int8): "
                  "one process, one deploy graph and one set of calibration images for all of them.")
flags.DEFINE_string("saved_model_dir", None, "Also keep the intermediate SavedModel here (for tflite_convert; one "
                    "--quant only).")
flags.DEFINE_bool("merge_normalization", True, "Fold the input normalisation into the first conv.")
flags.DEFINE_bool("parity", True, "Check Keras vs TFLite outputs after export.")
flags.DEFINE_string("data_root", None, "int8 only: data set root for calibration images (evaluation pipeline).")
flags.DEFINE_string("calib_split", "train", "int8 only: split to draw calibration images from.")
flags.DEFINE_integer("calib_images", 64, "int8 only: number of calibration images.")
flags.DEFINE_enum("int8_io", "float32", ["float32", "uint8"], "int8 only: input/output tensor type.")
flags.DEFINE_enum("final_resize", "nearest", ["nearest", "bilinear"], "The depth map's resize to the frame: "
                  "nearest (the authors' test-time resize) or bilinear (half-pixel centres).")
flags.DEFINE_enum("upsample", "auto", ["auto", "resize", "conv"], "With --final_resize=bilinear: auto = conv for "
                  "int8, resize otherwise (litedepth_tf.models.upsample).")
flags.DEFINE_string("report_split", None,
                    "Run the fp32/fp16/int8 quantisation report on this split (needs --data_root).")
flags.DEFINE_integer("report_images", 0, "Report: number of evaluation images (0 = the whole split).")
flags.DEFINE_string("report_dir", None, "Report: folder for the three .tflite files and quant_report.json "
                    "(default: the folder of --out).")
flags.DEFINE_integer("report_runs", 50, "Report: timed runs for the 1-thread latency.")
flags.DEFINE_string("report_from", None, "Report: evaluate the fp32/fp16/int8 files this script already exported "
                    "into this folder from the same --weights (checked against their model cards) instead of "
                    "exporting them again.")
flags.DEFINE_string("compare_to", None, "Report: an `evaluate --out` report of --weights on the same images (e.g. "
                    "runs/demo/eval_keras.json): exit 1 unless the fp32 file's metrics are within --compare_tol.")
flags.DEFINE_float("compare_tol", 1e-3, "Report: absolute tolerance per metric for --compare_to.")
flags.DEFINE_string("model", "student", "Model preset of --weights (student, student_80m).")
flags.DEFINE_enum("dataset", None, list(datasets.PRESETS), "Export at this data set's frame size (e.g. kitti: "
                  "352x1216); int8 calibration reads --data_root through it.")
flags.DEFINE_string("input_size", None, "Export at this frame size HxW (e.g. 352x1216; default 480x640 or the "
                    "--dataset's).")
flags.DEFINE_string("calib_split_file", None, "int8 only: calibration samples from this split list (with --dataset).")


def frame_size_from_flags():
    """(H, W) of the exported graph: --input_size, else the --dataset's frame, else 480x640."""
    if FLAGS.input_size:
        try:
            return parse_hw(FLAGS.input_size)
        except ValueError as err:
            raise cli.InputError(str(err)) from None
    if FLAGS.dataset:
        preset = datasets.get_preset(FLAGS.dataset)
        if preset.frame_size is None:
            raise cli.InputError(f"--dataset={FLAGS.dataset} has no fixed frame size: give --input_size HxW")
        return preset.frame_size
    return INPUT_HEIGHT, INPUT_WIDTH
flags.DEFINE_bool("require_gpu_compatible", False, "Fail (exit 1, nothing written) when an op would fall back from "
                  "the LiteRT GPU delegate to the CPU.")
flags.DEFINE_string("eval_report", None, "An `evaluate --out` report of --weights or --out: its metrics and data set "
                    "go into the model card.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)

    if FLAGS.report_split:
        if not FLAGS.data_root:
            raise cli.InputError("--report_split needs --data_root")
        reference = None
        if FLAGS.compare_to:  # read first: a wrong file is an input error before the (slow) report
            try:
                reference = read_report(FLAGS.compare_to)
                n = report_size(FLAGS.data_root, FLAGS.report_split, FLAGS.report_images)
            except ValueError as err:
                raise cli.InputError(str(err)) from None
            check_same_images(reference, FLAGS.data_root, FLAGS.report_split, n)
        out_dir = FLAGS.report_dir or os.path.dirname(os.path.abspath(FLAGS.out))
        try:
            report = quant_report(FLAGS.weights, FLAGS.data_root, FLAGS.report_split, FLAGS.report_images, out_dir,
                                  FLAGS.calib_split, FLAGS.calib_images, FLAGS.int8_io, threads=1,
                                  runs=FLAGS.report_runs, upsample=FLAGS.upsample,
                                  merge_normalization=FLAGS.merge_normalization, reuse_dir=FLAGS.report_from,
                                  final_resize=FLAGS.final_resize)
        except ValueError as err:  # an unusable split, a file that cannot be reused: one line, exit 2
            raise cli.InputError(str(err)) from None
        print(format_report(report))
        print(f"wrote {os.path.join(out_dir, 'quant_report.json')}")
        if reference is not None:
            return compare_fp32(report, reference)
        return cli.EXIT_OK

    quants = parse_quants(FLAGS.quant)
    if len(quants) > 1:
        if "{quant}" not in FLAGS.out:
            raise cli.InputError(f"--quant={','.join(quants)} writes {len(quants)} files: --out must hold {{quant}} "
                                 f"(e.g. artifacts/litedepth_{{quant}}.tflite), got {FLAGS.out!r}")
        if FLAGS.saved_model_dir:
            raise cli.InputError("--saved_model_dir keeps one SavedModel: give one --quant with it")
    outs = {q: FLAGS.out.replace("{quant}", q) for q in quants}
    evaluation = None
    if FLAGS.eval_report:  # read first: a wrong report is an input error before the (slow) export
        evaluation = model_card.evaluation_entry(FLAGS.eval_report, allowed_models=(FLAGS.weights, *outs.values()))
    frame = frame_size_from_flags()
    representative = None
    if "int8" in quants:
        if not FLAGS.data_root:
            raise cli.InputError("--quant=int8 needs --data_root (calibration images come from the data pipeline)")
        data_kw = {}
        if FLAGS.dataset or FLAGS.calib_split_file:
            data_kw = dict(dataset=FLAGS.dataset, split_file=FLAGS.calib_split_file)
        representative = representative_images(FLAGS.data_root, None if FLAGS.calib_split_file else FLAGS.calib_split,
                                               FLAGS.calib_images, **data_kw)
    try:
        deploy = build_deploy_from_weights(FLAGS.weights, FLAGS.merge_normalization, frame, FLAGS.model,
                                           final_resize=FLAGS.final_resize)
    except ValueError as err:
        raise cli.InputError(str(err)) from None
    for q in quants:  # in the order given; a failed GPU requirement stops before the next file
        status = export_one(deploy, q, outs[q], representative if q == "int8" else None, frame, evaluation)
        if status != cli.EXIT_OK:
            return status
    return cli.EXIT_OK


def compare_fp32(report: dict, reference: dict) -> int:
    """--compare_to: the report's fp32 metrics against an `evaluate --out` report of the Keras weights on the same
    images (exit 1 unless every metric is within --compare_tol)."""
    check_same_images(reference, report["data_root"], report["split"], report["n_images"])
    ok = print_comparison({"metrics": report["rows"]["fp32"]["metrics"]}, reference, FLAGS.compare_to,
                          FLAGS.compare_tol, what="fp32")
    return cli.EXIT_OK if ok else cli.EXIT_FAILED


def check_same_images(reference: dict, data_root: str, split: str, n_images: int) -> None:
    """--compare_to must be a report of the same data root, split and number of images (before the report runs, on
    the split's listing, and again on the images it scored)."""
    same = (os.path.abspath(str(reference.get("data_root", ""))) == os.path.abspath(data_root)
            and reference.get("split") == split and reference.get("n_images") == n_images)
    if not same:
        raise cli.InputError(f"--compare_to={FLAGS.compare_to}: scored {reference.get('n_images')} images of "
                             f"{reference.get('data_root')}/{reference.get('split')}, the report {n_images} of "
                             f"{data_root}/{split}: not the same images")


def parse_quants(values) -> list:
    """--quant's modes, each once, in the order given; an unknown one is an input error naming it."""
    quants = []
    for v in values:
        q = v.strip().lower()
        if q not in QUANTS:
            raise cli.InputError(f"--quant: {v!r} is not a quantisation mode (one or more of {', '.join(QUANTS)})")
        if q not in quants:
            quants.append(q)
    if not quants:
        raise cli.InputError(f"--quant: give one or more of {', '.join(QUANTS)}")
    return quants


def export_one(deploy, quant, out, representative, frame, evaluation) -> int:
    """One export of `deploy` in mode `quant` to `out`: GPU check, file, parity, model card."""
    model = apply_upsample(deploy, quant, FLAGS.upsample)
    gpu = {}

    def check_gpu(data):  # before the file is written: a required but failed check leaves the old file alone
        gpu["report"] = gpu_check.check_gpu_compatibility(data)
        gpu["report"].path = out
        print(gpu_check.format_report(gpu["report"]))
        if FLAGS.require_gpu_compatible and not gpu["report"].compatible:
            raise gpu_check.GpuIncompatibleError(gpu["report"].error_message() + " (--require_gpu_compatible; "
                                                 "nothing written)")

    try:
        path = export_tflite(model, out, quant, representative, FLAGS.int8_io, FLAGS.saved_model_dir,
                             before_write=check_gpu)
    except gpu_check.GpuIncompatibleError as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.EXIT_FAILED
    net = network_size(frame)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.3f} MB, {quant}; [1,{frame[0]},{frame[1]},3] -> "
          f"[1,{frame[0]},{frame[1]},1], network {net[0]}x{net[1]})")
    parity = None
    if FLAGS.parity and FLAGS.int8_io == "float32":
        inputs = None
        if representative is not None:  # int8: compare on real frames (its calibrated range), not on noise
            inputs = [batch[0] for _, batch in zip(range(3), representative())]
        report = run_export_parity_test(model, quant, tflite_path=path, inputs=inputs)
        print(f"parity Keras vs TFLite: max |diff| {report.max_abs_diff:.2e} m, mean {report.mean_abs_diff:.2e} m "
              f"over {report.num_inputs} inputs (tolerance {report.tolerance:g} m)")
        parity = {k: v for k, v in dataclasses.asdict(report).items() if k not in ("tflite_path", "tflite_bytes")}
        parity["reference"] = "Keras deploy model, " + ("3 calibration frames" if inputs else "3 synthetic images")
    tfl = TFLiteModel(path, check_signature=False)
    card = model_card.build_card(path, tfl.input, tfl.output, quant, weights=FLAGS.weights,
                                 upsample=resolve_upsample(FLAGS.upsample, quant, FLAGS.final_resize),
                                 merge_normalization=FLAGS.merge_normalization, parity=parity,
                                 gpu=gpu["report"].summary(), evaluation=evaluation,
                                 created_by="export/export_tflite.py", version=litedepth_tf.__version__,
                                 max_depth=getattr(model, "depth_range", MAX_DEPTH))
    print(f"wrote {model_card.write_card(path, card)} (model card)")
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main)
