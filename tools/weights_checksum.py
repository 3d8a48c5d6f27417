"""The checksum of the weights in Keras `.weights.h5` files: proof that a refactor changed no result.

    python tools/weights_checksum.py --weights runs/demo/last.weights.h5[,more.weights.h5,...]

Prints one line per file, ``<sha256>  <path>  (<n> arrays, <m> values)``. The hash covers every array's path inside
the file, dtype, shape and bytes, in sorted path order, and nothing else: HDF5 metadata (object addresses,
timestamps, chunk layout) may differ between two saves of the same weights, so a hash of the file itself would
not prove two runs equal. Two files with the same checksum hold bit-identical weights under the same names.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
from absl import flags

from litedepth_tf.common import cli


def weights_checksum(path) -> tuple:
    """``(sha256 hex, number of arrays, number of values)`` of the arrays in the h5 file `path`."""
    arrays = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arrays[name] = np.asarray(obj[()])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest(), len(arrays), int(sum(a.size for a in arrays.values()))


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    flags.DEFINE_list("weights", None, "Keras .weights.h5 files (comma-separated).", flag_values=fv)
    return fv


def main(argv, fv=None) -> int:
    fv = flags.FLAGS if fv is None else fv
    if not fv.weights:
        raise cli.InputError("--weights is required")
    for path in fv.weights:
        try:
            digest, n, size = weights_checksum(path)
        except OSError as err:
            raise cli.InputError(f"{path}: cannot read as HDF5 weights ({err})") from None
        print(f"{digest}  {path}  ({n} arrays, {size} values)")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()
