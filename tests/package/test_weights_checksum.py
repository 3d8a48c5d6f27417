"""tools/weights_checksum.py: equal weights give equal checksums whatever the file's HDF5 metadata; any changed
value, name or shape gives another; a file that is not HDF5 is one error line, exit 2."""

import importlib.util
import os

import keras
import numpy as np

from tests.helpers import REPO, run_command


def _tool():
    spec = importlib.util.spec_from_file_location("weights_checksum", os.path.join(REPO, "tools",
                                                                                  "weights_checksum.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 3))
    return keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(keras.layers.Dense(3, name="d")(inputs)))


def test_same_weights_same_checksum_any_change_another(tmp_path):
    tool = _tool()
    a, b, c = (str(tmp_path / f"{n}.weights.h5") for n in "abc")
    model = _model(0)
    model.save_weights(a)
    model.save_weights(b)  # a second save: the same arrays
    digest, n, size = tool.weights_checksum(a)
    assert tool.weights_checksum(b) == (digest, n, size)
    assert n == 4 and size == sum(int(np.prod(w.shape)) for w in model.weights)
    kernel = model.get_layer("c").kernel
    kernel.assign(kernel.numpy() + np.float32(1e-7) * (np.arange(kernel.numpy().size).reshape(kernel.shape) == 5))
    model.save_weights(c)
    assert tool.weights_checksum(c)[0] != digest
    _model(1).save_weights(c)
    assert tool.weights_checksum(c)[0] != digest


def test_command_prints_one_line_per_file_and_refuses_a_non_hdf5_file(tmp_path):
    a = str(tmp_path / "a.weights.h5")
    _model(0).save_weights(a)
    ok = run_command(["tools/weights_checksum.py", f"--weights={a},{a}"], check=True)
    lines = ok.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1] and lines[0].split()[1] == a
    bad = tmp_path / "not.weights.h5"
    bad.write_text("not hdf5")
    proc = run_command(["tools/weights_checksum.py", f"--weights={bad}"])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: cannot read as HDF5")
