"""Convert a data set once into the PNG layout the input pipeline decodes in the graph (library:
`litedepth_tf.data.convert`).

    python -m litedepth_tf.convert --dataset diode --data_root DIODE/val --out data/diode --split val
    python -m litedepth_tf.convert --dataset folder --depth_format npy --data_root my_set --split train \\
        --out data/my_set [--depth_scale 1 (values per metre in the .npy)] [--out_scale 1000]
    python -m litedepth_tf.convert --dataset nyu --nyu_mat nyu_depth_v2_labeled.mat --out data/nyu_official \\
        --indices test_indices.txt [--rgb_format jpg|png] [--nyu_depth rawDepths|depths]
    python -m litedepth_tf.convert --dataset nyu --from_mai data/synthetic --split local_val --out data/synthetic_nyu

What each writes and the flags that read it back (also in ``OUT/<split>/dataset.json``):

* ``diode``: ``OUT/<split>/rgb/<stem>.png`` + ``OUT/<split>/depth/<stem>.png`` (uint16 depth x 256, the mask
  applied) -> ``--dataset diode --data_root OUT --split <split>``;
* ``folder`` + ``--depth_format npy``: the same layout at ``--out_scale`` (default 1000 = mm) ->
  ``--dataset folder --depth_scale <out_scale> --data_root OUT --split <split>``;
* ``nyu --nyu_mat``: the labelled .mat (HDF5, MATLAB v7.3) -> ``OUT/test/<scene>/rgb_<i>.jpg`` +
  ``sync_depth_<i>.png`` (raw depth x1000) as BTS extracts its official test split, and ``OUT/nyu_test.txt`` ->
  ``--dataset nyu --data_root OUT --split_file OUT/nyu_test.txt``. The Eigen test frames are splits.mat's
  ``testNdxs`` (a MATLAB v5 file; e.g. ``python -c "import scipy.io; print(*scipy.io.loadmat('splits.mat')
  ['testNdxs'].ravel())" > test_indices.txt``);
* ``nyu --from_mai``: MAI frames copied byte for byte into the NYU layout (the same frames through both presets).

Exit 2 with one line naming the file for a bad source (missing partner, wrong shape, unreadable); the files
already converted stay (every file is written atomically).
"""

from __future__ import annotations

import os

from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import check_writable
from litedepth_tf.data import convert, datasets


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_enum("dataset", None, ["diode", "folder", "nyu"], "What to convert (see the module docstring).", **d)
    flags.DEFINE_string("data_root", None, "Source folder (diode: a DIODE split folder; folder: the data root).", **d)
    flags.DEFINE_string("out", None, "Output data root (gets <split>/...).", **d)
    flags.DEFINE_string("split", None, "Output split name (diode: val; folder: the source split, default '.'; "
                        "nyu --from_mai: the MAI split to copy, default local_val; nyu --nyu_mat: test).", **d)
    flags.DEFINE_enum("depth_format", "npy", ["npy"], "folder: the source depth format (only npy needs converting).",
                      **d)
    flags.DEFINE_float("depth_scale", 1.0, "folder: source values per metre in the .npy files (1 = metres).", **d)
    flags.DEFINE_float("out_scale", None, "Output PNG values per metre (default: diode 256, folder 1000).", **d)
    flags.DEFINE_string("nyu_mat", None, "nyu: the labelled nyu_depth_v2_labeled.mat (HDF5).", **d)
    flags.DEFINE_string("indices", None, "nyu --nyu_mat: a file of 1-based frame numbers to convert (default all).",
                        **d)
    flags.DEFINE_enum("rgb_format", "jpg", ["jpg", "png"], "nyu --nyu_mat: RGB file format (BTS ships jpg).", **d)
    flags.DEFINE_enum("nyu_depth", None, ["rawDepths", "depths"], "nyu --nyu_mat: which depth maps (default "
                      "rawDepths, as BTS's official test split; depths = the filled maps).", **d)
    flags.DEFINE_string("from_mai", None, "nyu: an MAI-layout data root to copy into the NYU layout.", **d)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **d)
    return fv


def main(argv, fv):
    if not fv.dataset:
        raise cli.InputError("--dataset is required (diode, folder or nyu)")
    if not fv.out:
        raise cli.InputError("--out is required (the output data root)")
    check_writable(fv.out, what="--out folder")
    if fv.dataset == "diode":
        if not fv.data_root:
            raise cli.InputError("--dataset diode needs --data_root (a DIODE split folder with *_depth.npy files)")
        info = convert.convert_diode(fv.data_root, fv.out, fv.split or "val", fv.out_scale or datasets.DIODE.depth_scale,
                                     fv.progress)
    elif fv.dataset == "folder":
        if not fv.data_root:
            raise cli.InputError("--dataset folder needs --data_root (ROOT/<split>/rgb + ROOT/<split>/depth/*.npy)")
        info = convert.convert_npy_folder(fv.data_root, fv.out, fv.split or ".", fv.depth_scale,
                                          fv.out_scale or 1000.0, fv.progress)
    else:
        if bool(fv.nyu_mat) == bool(fv.from_mai):
            raise cli.InputError("--dataset nyu needs exactly one of --nyu_mat (the labelled .mat) or --from_mai "
                                 "(an MAI-layout data root)")
        if fv.nyu_mat:
            if not os.path.isfile(fv.nyu_mat):
                raise cli.InputError(f"--nyu_mat {fv.nyu_mat} does not exist")
            info = convert.convert_nyu_mat(fv.nyu_mat, fv.out, fv.split or "test", fv.indices, fv.rgb_format,
                                           fv.nyu_depth, fv.progress)
        else:
            info = convert.mai_to_nyu(fv.from_mai, fv.split or "local_val", fv.out, progress=fv.progress)
    print(f"converted {info['frames']} frame(s) from {info['source']} ({info['converted']})")
    print(f"read it with: {info['read_with']}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)


if __name__ == "__main__":
    entry_point()
