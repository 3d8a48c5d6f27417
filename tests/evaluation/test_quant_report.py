"""int8 export end to end (full-integer weights + activations, float32 or uint8 I/O) and the quant report."""

import collections
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from litedepth_tf.tflite.calibration import representative_images
from litedepth_tf.data.synthetic import generate
from litedepth_tf.tflite.export import export_tflite
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite.runtime import TFLiteModel
from litedepth_tf.models.upsample import BilinearUpsample, apply_upsample, upsample_kernel, with_fast_upsampling
from tests.helpers import random_student, run_command

# int8 vs fp32 Keras on calibration-like (synthetic eval) frames, in output quantisation steps: the output
# (ReLU, clamped to [1e-3, 40]) is calibrated on [0, max], one int8 step ~ max / 255; the network adds its own
# rounding.
INT8_MAX_ABS_STEPS = 4.0  # measured ~3 (random student, depth ~8..14 m: step ~0.05 m)
INT8_MEAN_ABS_STEPS = 1.0  # measured ~0.6


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("quant_data")
    generate(str(out), n_train=4, n_val=2, seed=5, workers=1, progress=False)
    return str(out)


@pytest.fixture(scope="module")
def deploy():
    return build_deploy_model(random_student(11))  # the default: a nearest final resize


@pytest.fixture(scope="module")
def bilinear_deploy():
    return build_deploy_model(random_student(11), final_resize="bilinear")


@pytest.fixture(scope="module")
def exported(root, deploy, bilinear_deploy, tmp_path_factory):
    """int8 files: the default export (float32 and uint8 I/O), and the bilinear final resize as the conv
    upsampling (what --final_resize=bilinear exports for int8) and as the plain resize."""
    d = tmp_path_factory.mktemp("quant_models")
    rep = representative_images(root, "train", 4)
    assert apply_upsample(deploy, "int8") is deploy  # nothing replaces a nearest resize
    out = {io: export_tflite(deploy, str(d / f"m_{io}.tflite"), "int8", rep, int8_io=io) for io in ("float32", "uint8")}
    out["conv"] = export_tflite(apply_upsample(bilinear_deploy, "int8"), str(d / "m_conv.tflite"), "int8", rep)
    out["resize"] = export_tflite(bilinear_deploy, str(d / "m_resize.tflite"), "int8", rep)
    return out


def _val_images(root):
    return [b[0] for b in representative_images(root, "local_val", 0)()]


def _op_names(model):
    return collections.Counter(o["op_name"] for o in model.interpreter._get_ops_details())


@pytest.mark.parametrize("io", ["float32", "uint8"])
def test_int8_is_full_integer(exported, io):
    m = TFLiteModel(exported[io])
    dtypes = collections.Counter(np.dtype(t["dtype"]).name for t in m.interpreter.get_tensor_details())
    assert dtypes["int8"] >= 50  # every weight and activation
    assert dtypes["float32"] <= 2 and dtypes["float16"] == 0  # at most the float32 I/O tensors
    ops = _op_names(m)
    assert ops["CONV_2D"] > 0 and ops["RESIZE_BILINEAR"] == 4  # the input's and the decoder's three, in int8 too
    assert ops["RESIZE_NEAREST_NEIGHBOR"] == 1 and ops["TRANSPOSE"] == 0  # the final resize is the nearest one
    assert ops["QUANTIZE"] >= 1
    conv = _op_names(TFLiteModel(exported["conv"]))
    assert conv["TRANSPOSE"] == 1 and conv["MIRROR_PAD"] == 1 and conv["RESIZE_NEAREST_NEIGHBOR"] == 0
    assert os.path.getsize(exported[io]) <= 0.6e6  # target for the int8 student (architecture-determined)
    assert not [t["name"] for t in m.interpreter.get_tensor_details() if ";" in t["name"]]  # compact names
    want = np.float32 if io == "float32" else np.uint8
    assert m.input_dtype == want and np.dtype(m.output["dtype"]) == want
    if io == "uint8":
        for det in (m.input, m.output):
            scale, zero = det["quantization"]
            assert scale > 0 and 0 <= zero <= 255


def test_int8_close_to_keras_on_eval_frames(root, deploy, bilinear_deploy, exported):
    models = [(TFLiteModel(exported[k]), deploy if k in ("float32", "uint8") else bilinear_deploy)
              for k in ("float32", "uint8", "conv", "resize")]
    for x in _val_images(root):
        for m, keras_model in models:
            ref = np.asarray(keras_model(x, training=False))
            got = m.predict(x)
            assert got.shape == ref.shape == (1, 480, 640, 1) and got.dtype == np.float32
            diff, step = np.abs(got - ref), float(ref.max()) / 255.0
            assert diff.max() < INT8_MAX_ABS_STEPS * step and diff.mean() < INT8_MEAN_ABS_STEPS * step, (
                m.path, diff.max(), diff.mean(), step)


def test_uint8_io_quantises_input_and_dequantises_output(exported):
    m = TFLiteModel(exported["uint8"])
    x = np.random.default_rng(0).uniform(0, 255, (1, 480, 640, 3)).astype(np.float32)
    scale, zero = m.input["quantization"]
    q = np.clip(np.round(x / scale + zero), 0, 255).astype(np.uint8)
    m.interpreter.set_tensor(m.input["index"], q)
    m.interpreter.invoke()
    raw = m.interpreter.get_tensor(m.output["index"])
    oscale, ozero = m.output["quantization"]
    np.testing.assert_allclose(m.predict(x), (raw.astype(np.float32) - ozero) * oscale, atol=1e-6)


def test_bilinear_upsample_is_tf_resize():
    x = np.random.default_rng(0).uniform(0, 10, (2, 32, 40, 1)).astype(np.float32)
    ref = tf.image.resize(x, (480, 640), "bilinear").numpy()
    exact = BilinearUpsample((480, 640), integer_friendly=False)(x).numpy()
    assert exact.shape == (2, 480, 640, 1) and np.abs(exact - ref).max() < 1e-4  # float32 rounding at 0..10
    friendly = BilinearUpsample((480, 640))(x).numpy()
    assert np.abs(friendly - ref).max() < 0.005 * 10  # taps moved by < 0.4 % of the local depth differences
    for fy, fx in ((15, 16), (4, 4), (3, 5)):
        k = upsample_kernel(fy, fx)
        np.testing.assert_allclose(k.sum(axis=(0, 1, 2)), 1.0, atol=1e-6)  # every phase keeps gain 1
        scale = k.max(axis=(0, 1, 2)) / 127  # the converter's per-channel int8 scale
        q = k / scale
        np.testing.assert_allclose(q, np.round(q), atol=1e-3)  # ... quantises every tap exactly
    with pytest.raises(ValueError, match="integer multiple"):
        BilinearUpsample((100, 100))(np.zeros((1, 32, 40, 1), np.float32))


def test_fast_upsampling_deploy_equals_deploy(bilinear_deploy, deploy):
    x = np.random.default_rng(1).uniform(0, 255, (1, 480, 640, 3)).astype(np.float32)
    ref = np.asarray(bilinear_deploy(x, training=False))
    assert np.abs(np.asarray(with_fast_upsampling(bilinear_deploy, integer_friendly=False)(x)) - ref).max() < 5e-5
    # integer-friendly taps move by < 0.5 % of the local depth differences (at most the map's range)
    assert np.abs(np.asarray(apply_upsample(bilinear_deploy, "int8")(x)) - ref).max() < 5e-3 * (ref.max() - ref.min())
    assert apply_upsample(bilinear_deploy, "fp32") is bilinear_deploy
    with pytest.raises(ValueError, match="upsample must be one of"):
        apply_upsample(bilinear_deploy, "int8", "nearest")
    with pytest.raises(ValueError, match="nearest one"):  # the conv is a bilinear resize's twin
        apply_upsample(deploy, "int8", "conv")


def test_nearest_final_resize_repeats_each_prediction_pixel(deploy, bilinear_deploy):
    """The default deploy view ends with PyTorch's nearest resize: each of the 32x40 depth values fills its 15x16
    block of the frame exactly; the bilinear view's frame is a smooth interpolation of the same map."""
    x = np.random.default_rng(3).uniform(0, 255, (1, 480, 640, 3)).astype(np.float32)
    frame = np.asarray(deploy(x, training=False))[0, ..., 0]
    blocks = frame.reshape(32, 15, 40, 16)
    np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[:, :1, :, :1], blocks.shape))
    smooth = np.asarray(bilinear_deploy(x, training=False))[0, ..., 0]
    assert not np.array_equal(smooth.reshape(32, 15, 40, 16)[:, 0], smooth.reshape(32, 15, 40, 16)[:, 7])
    np.testing.assert_allclose(frame.mean(), smooth.mean(), rtol=0.05)


def test_compact_tensor_names_changes_nothing_but_names(deploy, tmp_path):
    from litedepth_tf.tflite.compact import compact_tensor_names

    path = export_tflite(deploy, str(tmp_path / "fp32.tflite"))  # fp32 exports keep the converter's names
    data = open(path, "rb").read()
    small = tmp_path / "fp32_compact.tflite"
    small.write_bytes(compact_tensor_names(data))
    assert small.stat().st_size < len(data) - 10_000
    a, b = TFLiteModel(path), TFLiteModel(str(small))
    x = np.random.default_rng(2).uniform(0, 255, (1, 480, 640, 3)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert a.interpreter.get_signature_list() == b.interpreter.get_signature_list()


def test_int8_gpu_delegate_verdicts(exported):
    """The default int8 export (a nearest final resize) is GPU-compatible; the bilinear conv upsampling pads
    SYMMETRIC (MIRROR_PAD), which the GPU delegate lacks; the plain bilinear resize is compatible too."""
    from litedepth_tf.tflite.gpu_check import check_gpu_compatibility

    for io in ("float32", "uint8"):
        report = check_gpu_compatibility(exported[io])
        assert report.compatible, report.incompatible
        ops = {r["op"] for r in report.ops}
        assert {"QUANTIZE", "RESIZE_NEAREST_NEIGHBOR"} <= ops and ("DEQUANTIZE" in ops) == (io == "float32")
    conv = check_gpu_compatibility(exported["conv"])
    assert [r["op"] for r in conv.incompatible] == ["MIRROR_PAD"], conv.incompatible
    assert "Only Reflective padding" in conv.incompatible[0]["reason"]
    resize = check_gpu_compatibility(exported["resize"])
    assert resize.compatible and {"QUANTIZE", "DEQUANTIZE", "RESIZE_BILINEAR"} <= {r["op"] for r in resize.ops}


def test_int8_needs_calibration(deploy, tmp_path):
    with pytest.raises(ValueError, match="representative_images"):
        export_tflite(deploy, str(tmp_path / "x.tflite"), "int8")




def test_quant_report_cli(root, tmp_path):
    """export_tflite.py --report_split: three exports from one set of weights, evaluated on the same images."""
    pytest.importorskip("litedepth_tf.evaluation.metrics")
    from litedepth_tf.evaluation.quant_report import format_report

    weights = str(tmp_path / "s.weights.h5")
    random_student(12).save_weights(weights)
    cmd = ["export/export_tflite.py", f"--weights={weights}",
           f"--data_root={root}", "--report_split=local_val", "--report_images=2", "--calib_images=2",
           "--report_runs=3", f"--out={tmp_path / 'art' / 'x.tflite'}"]
    proc = run_command(cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.load(open(tmp_path / "art" / "quant_report.json"))
    assert report["n_images"] == 2 and report["calibration"]["images"] == 2
    assert sorted(report["rows"]) == ["fp16", "fp32", "int8"]
    for q, row in report["rows"].items():
        assert os.path.isfile(row["path"]) and row["size_mb"] > 0 and row["latency_1t_median_ms"] > 0
        assert row["metrics"] and all(np.isfinite(v) for v in row["metrics"].values())
    assert report["rows"]["fp32"]["max_abs_diff_vs_fp32_m"] == 0
    # bound: INT8_MAX_ABS_STEPS steps of the widest possible output range [0, 40 m]
    assert 0 < report["rows"]["int8"]["max_abs_diff_vs_fp32_m"] < INT8_MAX_ABS_STEPS * 40.0 / 255.0
    assert report["rows"]["int8"]["upsample"] == report["rows"]["fp32"]["upsample"] == "nearest"
    assert {"int8_size_mb", "int8_latency_1t_below_fp32"} <= set(report["checks"])
    assert report["checks"]["int8_size_mb"]["ok"]
    table = format_report(report)
    assert "| int8 |" in table and "quant_report.json" in proc.stdout
    assert "| int8 |" in proc.stdout
    for q, row in report["rows"].items():  # every export has its card, with these metrics as its evaluation
        card = json.load(open(os.path.splitext(row["path"])[0] + ".card.json"))
        assert card["model"]["quantization"] == q and card["evaluation"]["metrics"] == row["metrics"]
        assert card["evaluation"]["n_images"] == 2 and card["training"]["weights"] == weights
        assert card["gpu_delegate"]["compatible"] and row["gpu_delegate_compatible"]


def test_quant_report_names_a_missing_split(root, tmp_path):
    pytest.importorskip("litedepth_tf.evaluation.metrics")
    from litedepth_tf.evaluation.quant_report import quant_report

    with pytest.raises(ValueError, match="report split 'nope'"):
        quant_report(None, root, "nope", 1, str(tmp_path))
    assert not os.listdir(tmp_path)  # nothing exported


def test_quant_report_reuses_the_exported_files(root, tmp_path):
    """--report_from: the three files exported from the same weights are evaluated as they are (copied, same bytes,
    their parity kept in the new cards); a file from other weights is refused with one line, exit 2."""
    weights = str(tmp_path / "s.weights.h5")
    random_student(13).save_weights(weights)
    art = tmp_path / "art"
    # the three files in one process, as `make export` writes them
    proc = run_command(["export/export_tflite.py", f"--weights={weights}", "--quant=fp32,fp16,int8",
                        f"--data_root={root}", "--calib_images=2", f"--out={art}/litedepth_{{quant}}.tflite"],
                       check=True)
    written = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("wrote ")]
    assert [p for p in written if p.endswith(".tflite")] == [str(art / f"litedepth_{q}.tflite")
                                                             for q in ("fp32", "fp16", "int8")]
    for q in ("fp32", "fp16", "int8"):
        card = json.load(open(art / f"litedepth_{q}.card.json"))
        assert card["model"]["quantization"] == q and card["parity"]["max_abs_diff"] <= card["parity"]["tolerance"]
    keras_eval = tmp_path / "eval_keras.json"
    run_command(["-m", "litedepth_tf.evaluate", f"--weights={weights}", f"--data_root={root}", "--split=local_val",
                 "--max_images=2", "--nobaseline", f"--out={keras_eval}"], check=True)
    cmd = ["export/export_tflite.py", f"--weights={weights}", f"--data_root={root}", "--report_split=local_val",
           "--report_images=2", "--calib_images=2", "--report_runs=3", f"--report_from={art}",
           f"--report_dir={tmp_path / 'quant'}", f"--compare_to={keras_eval}"]
    proc = run_command(cmd, check=True)
    assert f"fp32 matches {keras_eval}: every metric within 0.001" in proc.stdout
    report = json.load(open(tmp_path / "quant" / "quant_report.json"))
    for q, row in report["rows"].items():
        src = art / f"litedepth_{q}.tflite"
        assert row["reused_from"] == str(src)
        assert open(row["path"], "rb").read() == open(src, "rb").read()
        card = json.load(open(os.path.splitext(row["path"])[0] + ".card.json"))
        old = json.load(open(os.path.splitext(src)[0] + ".card.json"))
        assert card["parity"] == old["parity"] and card["parity"] is not None
        assert card["evaluation"]["metrics"] == row["metrics"]

    other = str(tmp_path / "other.weights.h5")
    random_student(14).save_weights(other)
    before = open(tmp_path / "quant" / "quant_report.json").read()
    proc = run_command([c.replace(weights, other) for c in cmd])
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "litedepth_fp32.tflite: cannot reuse it: exported from weights" in line and other in line
    assert open(tmp_path / "quant" / "quant_report.json").read() == before  # nothing written


def test_export_cli_refuses_bad_quant_lists(tmp_path):
    """--quant lists: an unknown mode, or several modes without {quant} in --out, is one line and exit 2 before
    anything is exported."""
    out = tmp_path / "art"
    cases = [(["--quant=fp32,int4", f"--out={out}/m_{{quant}}.tflite"], "--quant: 'int4' is not a quantisation mode"),
             (["--quant=fp32,fp16", f"--out={out}/m.tflite"], "writes 2 files: --out must hold {quant}"),
             (["--quant=fp32,fp16", f"--out={out}/m_{{quant}}.tflite", f"--saved_model_dir={out}/sm"],
              "--saved_model_dir keeps one SavedModel")]
    for args, message in cases:
        proc = run_command(["export/export_tflite.py", "--noparity", *args])
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("error: ") and message in line, line
    assert not out.exists()


def test_quant_report_compare_to_refuses_other_images(root, tmp_path):
    """--compare_to a report of other images (another split size) or one that is not JSON is an input error naming
    the file, exit 2, before the report runs."""
    weights = str(tmp_path / "s.weights.h5")
    random_student(15).save_weights(weights)
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    base = ["export/export_tflite.py", f"--weights={weights}", f"--data_root={root}", "--report_split=local_val",
            "--report_images=2", "--calib_images=2", "--report_runs=2", f"--report_dir={tmp_path / 'quant'}"]
    proc = run_command(base + [f"--compare_to={bad}"])
    assert proc.returncode == 2 and f"--compare_to={bad}: not a readable evaluation report" in proc.stderr
    assert not (tmp_path / "quant").exists()  # refused before anything was exported
    one = tmp_path / "eval_one.json"
    run_command(["-m", "litedepth_tf.evaluate", f"--weights={weights}", f"--data_root={root}", "--split=local_val",
                 "--max_images=1", "--nobaseline", f"--out={one}"], check=True)
    proc = run_command(base + [f"--compare_to={one}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "scored 1 images of" in line and "the report 2 of" in line and "not the same images" in line
    assert not (tmp_path / "quant").exists()  # refused on the split's listing, before the report ran
