"""Export the LiteDepth student to `.tflite` (thin CLI over `litedepth_tf.export`).

    python export/export_tflite.py --weights runs/demo/best.weights.h5 --quant fp32 --out artifacts/litedepth_fp32.tflite

Equivalent two-step route with the TensorFlow CLI:

    python export/export_tflite.py --weights ... --saved_model_dir artifacts/saved_model --out artifacts/litedepth_fp32.tflite
    tflite_convert --saved_model_dir=artifacts/saved_model --output_file=artifacts/litedepth_fp32.tflite

Without --weights a freshly initialised student is exported (for latency work). Every export is checked against
Keras with the parity helper unless --noparity.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "Student weights (.weights.h5) written by the trainer; none = random init.")
flags.DEFINE_string("out", "artifacts/litedepth_fp32.tflite", "Output .tflite path (written atomically).")
flags.DEFINE_enum("quant", "fp32", ["fp32", "fp16", "int8"], "Quantisation mode.")
flags.DEFINE_string("saved_model_dir", None, "Also keep the intermediate SavedModel here (for tflite_convert).")
flags.DEFINE_bool("merge_normalization", True, "Fold the input normalisation into the first conv.")
flags.DEFINE_bool("parity", True, "Check Keras vs TFLite outputs after export.")
flags.DEFINE_string("data_root", None, "int8 only: data set root for calibration images (evaluation pipeline).")
flags.DEFINE_string("calib_split", "train", "int8 only: split to draw calibration images from.")
flags.DEFINE_integer("calib_images", 64, "int8 only: number of calibration images.")
flags.DEFINE_enum("int8_io", "float32", ["float32", "uint8"], "int8 only: input/output tensor type.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from litedepth_tf.export import build_deploy_from_weights, export_tflite
    from litedepth_tf.parity import run_export_parity_test

    model = build_deploy_from_weights(FLAGS.weights, FLAGS.merge_normalization)
    representative = None
    if FLAGS.quant == "int8":
        from litedepth_tf.calibration import representative_images

        if not FLAGS.data_root:
            raise app.UsageError("--quant=int8 needs --data_root (calibration images come from the data pipeline)")
        representative = representative_images(FLAGS.data_root, FLAGS.calib_split, FLAGS.calib_images)
    path = export_tflite(model, FLAGS.out, FLAGS.quant, representative, FLAGS.int8_io, FLAGS.saved_model_dir)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.3f} MB, {FLAGS.quant})")
    if FLAGS.parity and FLAGS.int8_io == "float32":
        report = run_export_parity_test(model, FLAGS.quant, tflite_path=path)
        print(f"parity Keras vs TFLite: max |diff| {report.max_abs_diff:.2e} m, mean {report.mean_abs_diff:.2e} m "
              f"over {report.num_inputs} inputs (tolerance {report.tolerance:g} m)")


if __name__ == "__main__":
    app.run(main)
