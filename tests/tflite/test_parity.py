"""Keras vs TFLite parity for every exported model, through one helper."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from litedepth_tf.tflite.export import export_saved_model, export_tflite
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.tflite.parity import ParityError, run_export_parity_test
from litedepth_tf.tflite.runtime import TFLiteModel
from tests.helpers import random_student


@pytest.fixture(scope="module")
def deploy():
    return build_deploy_model(random_student(7), merge_normalization=True)


@pytest.mark.parametrize("quant", ["fp32", "fp16"])
def test_student_parity(deploy, quant, tmp_path):
    report = run_export_parity_test(deploy, quant=quant, tflite_path=str(tmp_path / f"s_{quant}.tflite"))
    assert report.num_inputs >= 3
    assert report.max_abs_diff < {"fp32": 1e-4, "fp16": 5e-2}[quant]
    assert report.tflite_bytes <= {"fp32": 1.6e6, "fp16": 0.9e6}[quant]


def test_unmerged_deploy_parity(tmp_path):
    run_export_parity_test(build_deploy_model(random_student(8), merge_normalization=False), "fp32",
                           tflite_path=str(tmp_path / "u.tflite"))


def _resizing_trap_model():
    """The Keras 3.15 trap: a plain `Resizing` layer leaks training=True into the later BatchNorm on export."""
    inputs = keras.Input((480, 640, 3), batch_size=1)
    x = keras.layers.Resizing(128, 160)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    bn = keras.layers.BatchNormalization()
    x = bn(x)
    x = keras.layers.Conv2D(1, 1)(x)
    model = keras.Model(inputs, keras.layers.Resizing(480, 640)(x))
    g, b, mu, var = bn.get_weights()
    bn.set_weights([g * 2, b + 1, mu + 3, var * 5])
    return model


def test_parity_helper_catches_batchnorm_training_trap(tmp_path):
    with pytest.raises(ParityError, match="max abs diff"):
        run_export_parity_test(_resizing_trap_model(), "fp32", tflite_path=str(tmp_path / "trap.tflite"))


def test_signature_is_checked(tmp_path):
    inputs = keras.Input((240, 320, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inputs))
    path = export_tflite(model, str(tmp_path / "small.tflite"))
    with pytest.raises(ValueError, match=r"small.tflite.*input shape \(1, 240, 320, 3\).*expected \(1, 480, 640, 3\)"):
        TFLiteModel(path)


def test_export_is_atomic_on_failure(deploy, tmp_path, monkeypatch):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old model")

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr("litedepth_tf.tflite.export.convert_saved_model", broken)
    with pytest.raises(RuntimeError):
        export_tflite(deploy, str(path))
    assert path.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


def test_bad_quant_mode(deploy, tmp_path):
    with pytest.raises(ValueError, match="quant must be one of"):
        export_tflite(deploy, str(tmp_path / "x.tflite"), quant="int4")


def test_tflite_convert_command_gives_the_same_model(deploy, tmp_path):
    """The README's `tflite_convert --saved_model_dir=... --output_file=...` works on our SavedModel."""
    sm = export_saved_model(deploy, str(tmp_path / "saved_model"))
    out = tmp_path / "cli.tflite"
    exe = os.path.join(os.path.dirname(sys.executable), "tflite_convert")
    proc = subprocess.run([exe, f"--saved_model_dir={sm}", f"--output_file={out}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = run_export_parity_test(deploy, "fp32", tflite_path=str(out))
    assert report.max_abs_diff < 1e-4


def test_tflite_model_rejects_wrong_input(deploy, tmp_path):
    path = export_tflite(deploy, str(tmp_path / "m.tflite"))
    with pytest.raises(ValueError, match=r"expects input of shape \(1, 480, 640, 3\)"):
        TFLiteModel(path).predict(np.zeros((1, 240, 320, 3), np.float32))


def test_tflite_model_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.tflite"):
        TFLiteModel(str(tmp_path / "absent.tflite"))
    bad = tmp_path / "garbage.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="garbage.tflite"):
        TFLiteModel(str(bad))
