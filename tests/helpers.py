"""Scaffolding shared by the tests: one way to run a command (in this process or a subprocess), one tiny-model
factory, one small synthetic data set."""

from __future__ import annotations

import errno
import fnmatch
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from litedepth_tf.common import cli
from litedepth_tf.data.synthetic import generate
from litedepth_tf.models.student import build_deploy_model, build_student
from litedepth_tf.tflite.export import export_tflite

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "LITEDEPTH_NO_PROGRESS": "1"}


def command_env(**extra) -> dict:
    """The environment a command runs in under the tests: quiet TensorFlow, no progress bars."""
    return dict(os.environ, **QUIET_ENV, **{k: str(v) for k, v in extra.items()})


def run_command(args, timeout: float = 600, env: dict | None = None, check: bool = False, **kw):
    """Runs ``python ARGS...`` (e.g. ``["-m", "litedepth_tf.evaluate", "--weights=..."]`` or
    ``["export/export_tflite.py", ...]``) in the repository root; returns the CompletedProcess (text output)."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=command_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert proc.returncode == 0, f"{' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def call_main(module, *args) -> int:
    """A command module (``litedepth_tf.predict``, ...) run in this process, with its exit status and error line:
    ``call_main(predict, "--weights", w, "--input", x, "--out", o)``."""
    return cli.call(module.main, module.define_flags, [module.__name__, *map(str, args)])


def randomize_batchnorm(model: keras.Model, seed: int = 0) -> None:
    """Gives every BatchNorm non-trivial moving statistics, so train/inference-mode mix-ups show."""
    rng = np.random.default_rng(seed)
    stack = [model]
    while stack:
        for layer in stack.pop().layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
            elif isinstance(layer, keras.layers.BatchNormalization):
                g, b, mu, var = layer.get_weights()
                layer.set_weights(
                    [rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.2, b.shape),
                     rng.normal(0, 0.2, mu.shape), rng.uniform(0.5, 2.0, var.shape)]
                )


def make_depth_nontrivial(model: keras.Model, bias: float = 8.0) -> None:
    """Sets the last conv's bias: the ReLU head's depth ``bias + w.x`` then sits mid-range (~8 m) and varies across
    the image instead of being clamped at 1 mm or 40 m, so parity tests compare real, non-clamped numbers."""
    layer = model.get_layer("decoder_depth_conv")
    kernel, b = layer.get_weights()
    layer.set_weights([kernel, np.full_like(b, bias)])


def random_student(seed: int = 0):
    """The tiny-model factory: a student with random weights, non-trivial BatchNorm statistics and mid-range
    depth (so that parity and export tests compare real numbers)."""
    keras.utils.set_random_seed(seed)
    model = build_student()
    randomize_batchnorm(model, seed)
    make_depth_nontrivial(model)
    return model


def read_ply(data: bytes):
    """A binary little-endian PLY parsed from scratch (no PLY library): (header lines, structured vertex array)."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"], header
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    props = [line.split() for line in header if line.startswith("property")]
    types = {"float": "<f4", "uchar": "u1"}
    dtype = np.dtype([(name, types[t]) for _, t, name in props])
    assert len(data) - end == count * dtype.itemsize, (len(data) - end, count, dtype.itemsize)
    return header, np.frombuffer(data[end:], dtype, count)


def student_files(folder, seed: int, tflite_name: str = "student_fp32.tflite") -> tuple[str, str]:
    """`random_student(seed)` saved as `folder/student.weights.h5` and exported to `folder/<tflite_name>` (fp32
    deploy view): (weights path, .tflite path), for module-scoped model fixtures."""
    student = random_student(seed)
    weights = os.path.join(folder, "student.weights.h5")
    student.save_weights(weights)
    return weights, export_tflite(build_deploy_model(student), os.path.join(folder, tflite_name))


def synthetic_root(tmp_path_factory, name: str, n_train: int, n_val: int, seed: int) -> str:
    """A small synthetic MAI-layout set in a fresh temp folder (for module-scoped `data_root` fixtures)."""
    root = tmp_path_factory.mktemp(name)
    generate(str(root), n_train, n_val, seed=seed, workers=1, progress=False)
    return str(root)


def fail_writes(monkeypatch, dest_glob: str, nth: int = 1, code: int = errno.ENOSPC) -> list:
    """Makes the `nth` (and every later) atomic write whose destination's file name matches `dest_glob` fail as on
    a full disk: `os.fsync` of its temp file (``.NAME.*``, `litedepth_tf.common.files.atomic_path`) raises
    OSError(`code`), which is where a full disk shows up on file systems that allocate late (ext4, XFS, NFS).
    Returns the list of temp files it failed (their paths), for the test to check they are gone."""
    real, seen, failed = os.fsync, [0], []

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if fnmatch.fnmatch(os.path.basename(path), f".{dest_glob}.*"):
            seen[0] += 1
            if seen[0] >= nth:
                failed.append(path)
                raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


def fail_checkpoint_saves(monkeypatch) -> set:
    """TensorFlow's checkpoint save fails as on a full disk for the checkpoint numbers the test puts into the
    returned set: the lowest call of the saver, `io_ops.save_v2` (as used by functional_saver), leaves a partial
    shard in `ckpt-N_temp/` and raises what SaveV2 raises there (RESOURCE_EXHAUSTED, the message as observed on a
    full tmpfs)."""
    from tensorflow.python.checkpoint import functional_saver

    fail, real = set(), functional_saver.io_ops.save_v2

    def save_v2(prefix, *args, **kwargs):
        path = prefix.numpy().decode() if hasattr(prefix, "numpy") else os.fspath(prefix)
        number = int(os.path.basename(os.path.dirname(path)).rsplit("-", 1)[1].split("_")[0])
        if number in fail:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".data-00000-of-00001.tempstate1", "wb") as f:
                f.write(b"\0" * 100)
            raise tf.errors.ResourceExhaustedError(
                None, None, "{{function_node __wrapped__SaveV2_dtypes_3_device_/job:localhost/replica:0/task:0/"
                f"device:CPU:0}}}} {path}.data-00000-of-00001.tempstate1; No space left on device [Op:SaveV2]")
        return real(prefix, *args, **kwargs)

    monkeypatch.setattr(functional_saver.io_ops, "save_v2", save_v2)
    return fail
