"""Export the LiteDepth student to `.tflite`, checked (library: `litedepth_tf.tflite.checked_export`; the quant
report: `litedepth_tf.evaluation.quant_report`).

    python export/export_tflite.py --weights runs/demo/best.weights.h5 --quant fp32 --out artifacts/litedepth_fp32.tflite
    python export/export_tflite.py --weights runs/demo/best.weights.h5 --quant fp32,fp16,int8 --data_root data/synthetic \
        --out 'artifacts/litedepth_{quant}.tflite'      # the three in one process (what `make export` runs)
    python export/export_tflite.py --weights ... --saved_model_dir artifacts/saved_model --out m.tflite  # + SavedModel
    tflite_convert --saved_model_dir=artifacts/saved_model --output_file=m.tflite  # the same with TensorFlow's CLI

Without --weights a freshly initialised student is exported (for latency work). int8 is full-integer, calibrated
on --calib_images frames of --calib_split from the evaluation pipeline (--int8_io uint8: uint8 input / output).
--final_resize: the last op, the 32x40 -> 480x640 resize of the depth: nearest (default, the authors' test-time
resize; RESIZE_NEAREST_NEIGHBOR, exact in int8) or bilinear; with bilinear, --upsample exports it as an exact 3x3
conv + pixel shuffle for int8 (auto), for every mode (conv) or none (resize). Other frame sizes: --dataset kitti (352x1216) or --input_size HxW, with the preset
of the weights (--model student_80m for the 80 m head; default: the run's).

After every export: the GPU delegate check (--require_gpu_compatible: an op that would fall back to the CPU is
exit 1 naming it, nothing written), the Keras vs TFLite parity check (unless --noparity) and the model card
`<out without .tflite>.card.json` (with --eval_report, an `evaluate --out` report of --weights or --out, its
evaluation). `predict`, `evaluate` and `litedepth_tf.load` refuse a file whose card contradicts it.

Quantisation report: fp32, fp16 and int8 from the same weights on the same images (metrics, sizes, 1-thread
latency, targets) into --report_dir (default: the folder of --out):

    python export/export_tflite.py --weights ... --data_root data/synthetic --report_split local_val --report_images 40

--report_from DIR evaluates the three files already exported there (checked against their cards);
--compare_to runs/demo/eval_keras.json exits 1 unless the fp32 file's metrics match it to --compare_tol.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from litedepth_tf.common import cli
from litedepth_tf.data import datasets
from litedepth_tf.evaluation.evaluator import read_report
from litedepth_tf.evaluation.quant_report import compare_fp32, check_same_images, format_report, quant_report, \
    report_size
from litedepth_tf.tflite import model_card
from litedepth_tf.tflite.calibration import representative_images
from litedepth_tf.tflite.checked_export import ExportOptions, GpuIncompatibleError, export_checked, parse_quants
from litedepth_tf.tflite.export import build_deploy_from_weights


def define_flags(fv):
    d = dict(flag_values=fv)
    cli.define_model_flags(fv, tflite=False)
    datasets.define_size_flags(fv, "The exported graph's input")
    flags.DEFINE_string("out", "artifacts/litedepth_{quant}.tflite", "Output .tflite path (written atomically); "
                        "{quant} becomes the quantisation mode (needed when --quant lists several).", **d)
    flags.DEFINE_list("quant", ["fp32"], "fp32, fp16, int8 or several (e.g. fp32,fp16,int8): one process, one "
                      "deploy graph and one set of calibration images for all of them.", **d)
    flags.DEFINE_string("saved_model_dir", None, "Also keep the intermediate SavedModel here (one --quant).", **d)
    flags.DEFINE_bool("merge_normalization", True, "Fold the input normalisation into the first conv.", **d)
    flags.DEFINE_bool("parity", True, "Check Keras vs TFLite outputs after export.", **d)
    flags.DEFINE_string("data_root", None, "int8 / the report: data set root (evaluation pipeline).", **d)
    flags.DEFINE_string("calib_split", "train", "int8: split to draw calibration images from.", **d)
    flags.DEFINE_string("calib_split_file", None, "int8: calibration samples from this split list (--dataset).", **d)
    flags.DEFINE_integer("calib_images", 64, "int8: number of calibration images.", **d)
    flags.DEFINE_enum("int8_io", "float32", ["float32", "uint8"], "int8: input/output tensor type.", **d)
    flags.DEFINE_enum("final_resize", "nearest", ["nearest", "bilinear"], "The depth's resize to the frame: "
                      "nearest (the authors' test-time resize) or bilinear (half-pixel centres).", **d)
    flags.DEFINE_enum("upsample", "auto", ["auto", "resize", "conv"], "With --final_resize=bilinear: auto = conv "
                      "for int8, resize otherwise (litedepth_tf.models.upsample).", **d)
    flags.DEFINE_bool("require_gpu_compatible", False, "Fail (exit 1, nothing written) when an op would fall back "
                      "from the LiteRT GPU delegate to the CPU.", **d)
    flags.DEFINE_string("eval_report", None, "An `evaluate --out` report of --weights or --out for the card.", **d)
    flags.DEFINE_string("report_split", None, "Run the fp32/fp16/int8 report on this split (--data_root).", **d)
    flags.DEFINE_integer("report_images", 0, "Report: number of evaluation images (0 = the whole split).", **d)
    flags.DEFINE_string("report_dir", None, "Report: folder for its files (default: the folder of --out).", **d)
    flags.DEFINE_integer("report_runs", 50, "Report: timed runs for the 1-thread latency.", **d)
    flags.DEFINE_string("report_from", None, "Report: evaluate the files exported into this folder from the same "
                        "--weights (checked against their cards) instead of exporting them again.", **d)
    flags.DEFINE_string("compare_to", None, "Report: an `evaluate --out` report of --weights on the same images: "
                        "exit 1 unless the fp32 file's metrics are within --compare_tol.", **d)
    flags.DEFINE_float("compare_tol", 1e-3, "Report: absolute tolerance per metric for --compare_to.", **d)
    return fv


def report(fv) -> int:
    if not fv.data_root:
        raise cli.InputError("--report_split needs --data_root")
    reference, out_dir = None, fv.report_dir or os.path.dirname(os.path.abspath(fv.out))
    try:  # a wrong --compare_to is an input error before the (slow) report; an unusable split or file too
        if fv.compare_to:
            reference = read_report(fv.compare_to)
            check_same_images(reference, fv.compare_to, fv.data_root, fv.report_split,
                              report_size(fv.data_root, fv.report_split, fv.report_images))
        rep = quant_report(fv.weights, fv.data_root, fv.report_split, fv.report_images, out_dir, fv.calib_split,
                           fv.calib_images, fv.int8_io, threads=1, runs=fv.report_runs, upsample=fv.upsample,
                           merge_normalization=fv.merge_normalization, reuse_dir=fv.report_from,
                           final_resize=fv.final_resize)
    except ValueError as err:
        raise cli.InputError(str(err)) from None
    print(format_report(rep))
    print(f"wrote {os.path.join(out_dir, 'quant_report.json')}")
    if reference is not None and not compare_fp32(rep, reference, fv.compare_to, fv.compare_tol):
        return cli.EXIT_FAILED
    return cli.EXIT_OK


def main(argv, fv):
    logging.set_verbosity(logging.WARNING)
    if fv.report_split:
        return report(fv)
    quants = parse_quants(fv.quant)
    if len(quants) > 1 and "{quant}" not in fv.out:
        raise cli.InputError(f"--quant={','.join(quants)} writes {len(quants)} files: --out must hold {{quant}} "
                             f"(e.g. artifacts/litedepth_{{quant}}.tflite), got {fv.out!r}")
    if len(quants) > 1 and fv.saved_model_dir:
        raise cli.InputError("--saved_model_dir keeps one SavedModel: give one --quant with it")
    outs = {q: fv.out.replace("{quant}", q) for q in quants}
    evaluation = None
    if fv.eval_report:  # read first: a wrong report is an input error before the (slow) export
        evaluation = model_card.evaluation_entry(fv.eval_report, allowed_models=(fv.weights, *outs.values()))
    frame = datasets.frame_size_from_flags(fv)
    representative = None
    if "int8" in quants:
        if not fv.data_root:
            raise cli.InputError("--quant=int8 needs --data_root (calibration images come from the data pipeline)")
        data_kw = dict(dataset=fv.dataset, split_file=fv.calib_split_file) if fv.dataset or fv.calib_split_file \
            else {}
        representative = representative_images(fv.data_root, None if fv.calib_split_file else fv.calib_split,
                                               fv.calib_images, **data_kw)
    try:
        deploy = build_deploy_from_weights(fv.weights, fv.merge_normalization, frame, fv.model,
                                           final_resize=fv.final_resize)
    except ValueError as err:
        raise cli.InputError(str(err)) from None
    options = ExportOptions(weights=fv.weights, upsample=fv.upsample, int8_io=fv.int8_io,
                            merge_normalization=fv.merge_normalization, parity=fv.parity,
                            require_gpu_compatible=fv.require_gpu_compatible, saved_model_dir=fv.saved_model_dir)
    for q in quants:  # in the order given; a failed GPU requirement stops before the next file
        try:
            export_checked(deploy, q, outs[q], options, representative if q == "int8" else None, evaluation)
        except GpuIncompatibleError as err:
            print(f"error: {err}", file=sys.stderr)
            return cli.EXIT_FAILED
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
