"""Data sets as data: one frozen `DatasetPreset` per layout people have (``--dataset`` on train / evaluate /
data_check / convert / export), and the listing of their samples (folders or a split file).

A preset fixes how samples are listed and paired, how depth is decoded and scaled, the frame size (after a fixed
crop such as KITTI's), the camera intrinsics (per-sample focal where the split file gives one), the valid depth
range, the R-crop sizes, the network input size and the default evaluation crop:

============ ============================================ ========= ============ ======== ========= ===========
preset       files                                        depth     frame        range m  network   eval crop
============ ============================================ ========= ============ ======== ========= ===========
mai2022      ROOT/<split>/{rgb,depth}/<stem>.png          PNG16/1000 480x640     ..40     128x160   none
nyu          rgb_<id>.jpg|png + sync_depth_<id>.png       PNG16/1000 480x640     1e-3..10 128x160   eigen (NYU)
kitti        <drive>/image_0X/data/<f>.png +              PNG16/256  352x1216 KB 1e-3..80 96x320    garg
             <drive>/proj_depth/groundtruth/image_0X/<f>.png
diode        converted: ROOT/<split>/{rgb,depth}/<stem>.png PNG16/256 768x1024     1e-3..80 192x256   none
             (native *.png + *_depth.npy + *_depth_mask.npy: `python -m litedepth_tf.convert` first)
folder       ROOT/<split>/{rgb,depth}/ or a split file    --depth_scale  from files  --max_depth  rule  none
============ ============================================ ========= ============ ======== ========= ===========

Rules (the paper's numbers as proportions, so that every preset follows the same recipe):

* network input = the frame scaled by the paper's 480x640 -> 128x160 (x 128/480, x 160/640), each side rounded to
  the nearest multiple of 32 (the encoder's stride), e.g. KITTI 352x1216 -> 93.9x304 -> 96x320;
* R-crop sizes = the paper's three crops 240x384, 360x512, 480x640 of a 480x640 frame as fractions of the frame
  (0.5 x 0.6, 0.75 x 0.8, 1 x 1), chosen so that each crop's network input (the fraction of the network size,
  rounded to /32) stays divisible by 32; the crop in frame pixels is that network size scaled back to the frame.
  MAI / NYU: exactly the paper's 240x384, 360x512, 480x640 (network 64x96, 96x128, 128x160).

Split files (``--split_file``), the format the public toolboxes (BTS, Monocular-Depth-Estimation-Toolbox) ship:
one sample per line, ``rgb depth [focal]``, paths relative to ``--data_root`` (a leading ``/`` is dropped, as the
toolbox does), ``None`` for the depth of a frame without ground truth (the line is skipped and counted); ``#``
starts a comment; a single token is a stem of the pairs layout (``rgb/<stem>.png`` + ``depth/<stem>.png``).
A preset may list sub-folders that paths are also looked up in (KITTI: ``input/``, ``gt_depth/``,
``data_depth_annotated/train|val/``), so the toolboxes' own folder trees work unchanged. A line whose file is
missing is an error naming the split file and the line number.

The intrinsics of a preset are those of the stored (raw) frames; a fixed frame crop (KITTI's bottom-centre
352x1216 "KB crop": top = H - 352, left = (W - 1216) // 2) shifts the principal point per sample. The focal of a
split-file line replaces fx and fy for that sample. NYU: fx 518.8579, fy 519.4696, cx 325.5824, cy 253.7362 (the
NYU toolkit's calibration; note the toolbox's own ``cam_intrinsic`` matrix has fy in the wrong row, not copied).
KITTI: the 2011_09_26 calibration (fx = fy = 721.5377, cx 609.5593, cy 172.854), per-sample focal from the split.

Pure Python + NumPy (no TensorFlow): `litedepth_tf.api` uses the size rules without importing TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAI_INTRINSICS, MAX_DEPTH
from litedepth_tf.common.sizes import network_size, parse_hw, round32
from litedepth_tf.data.check import check_pairs, first_mismatch, new_entry, pair_files, read_image_header, scale_problem

EVAL_CROPS = ("none", "eigen", "garg")
DEPTH_FORMATS = ("png16", "npy")
CROP_FRACTIONS = ((0.5, 0.6), (0.75, 0.8), (1.0, 1.0))  # the paper's 240x384, 360x512, 480x640 of 480x640
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # rows [a H, b H), cols [c W, d W) (Garg ECCV16)
EIGEN_CROP_KITTI = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
EIGEN_CROP_NYU = (45, 471, 41, 601)  # rows 45:471, cols 41:601 of a 480x640 frame
KB_CROP = (352, 1216)  # KITTI benchmark crop, bottom-centre
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
KITTI_INTRINSICS = (721.5377, 721.5377, 609.5593, 172.854)  # raw frames (~375x1242), drive date 2011_09_26
DIODE_INTRINSICS = (886.81, 927.06, 512.0, 384.0)
IMAGE_EXTS = (".png", ".jpg", ".jpeg")


class DatasetError(InputError):
    """A data set that cannot be listed as its preset says (names the file / split-file line)."""


def crop_network_size(crop, frame, net=None) -> tuple[int, int]:
    """Network input size of an R-crop (frame pixels): the crop scaled like the frame, rounded to /32, at most
    the network size."""
    net = network_size(frame) if net is None else net
    return (min(net[0], round32(crop[0] * net[0] / frame[0])), min(net[1], round32(crop[1] * net[1] / frame[1])))


def rcrop_sizes(frame, net=None, fractions=CROP_FRACTIONS) -> tuple:
    """The R-crop sizes (frame pixels) for a frame: see the module docstring. Duplicates (small frames) kept
    once."""
    net = network_size(frame) if net is None else net
    out = []
    for fh, fw in fractions:
        nh, nw = min(net[0], round32(net[0] * fh)), min(net[1], round32(net[1] * fw))
        crop = (min(frame[0], int(round(nh * frame[0] / net[0]))), min(frame[1], int(round(nw * frame[1] / net[1]))))
        if crop not in out:
            out.append(crop)
    return tuple(out)


def parse_size(text, what="--size"):
    """'HxW' -> (H, W); InputError naming the flag otherwise."""
    try:
        return parse_hw(text, what)
    except ValueError as err:
        raise InputError(str(err)) from None


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    """One data set layout and its protocol (see the module docstring for the table)."""

    name: str
    layout: str  # "pairs" (<split>/rgb + <split>/depth by stem), "nyu", "kitti", "diode_native" (convert first)
    summary: str
    depth_scale: float = 1000.0  # stored value per metre
    depth_format: str = "png16"  # "png16" (decoded in graph) or "npy" (convert first)
    frame_size: tuple | None = (INPUT_HEIGHT, INPUT_WIDTH)  # after frame_crop; None: read from the files
    frame_crop: str = "none"  # "none" or "kb" (KITTI bottom-centre 352x1216 of a larger raw frame)
    intrinsics: tuple | None = MAI_INTRINSICS  # fx, fy, cx, cy of the stored (raw) frames; None: from the size
    min_depth: float = 1e-3  # evaluation range (metres): min_depth < gt < max_depth
    max_depth: float = MAX_DEPTH  # also the pipeline's cap: deeper GT is invalid
    eval_crop: str = "none"  # default of evaluate --eval_crop
    eigen_crop: str = "nyu"  # what --eval_crop=eigen means here: "nyu" (pixel box) or "kitti" (fractions)
    min_valid: float = 0.01  # data_check warns below this valid-pixel fraction (KITTI's LiDAR GT is sparse)
    expect_p999: tuple | None = None  # data_check: plausible 99.9th percentile of a split's valid depth (m)
    splits: tuple = ("train", "local_val")  # default train / validation split
    rgb_roots: tuple = ("",)  # sub-folders of --data_root that split-file RGB paths are also looked up in
    depth_roots: tuple = ("",)
    model: str = "student"  # the --model preset its flagfile trains (head range covers max_depth)
    convert: str = ""  # how to get the in-graph layout, for the error message

    @property
    def net_size(self) -> tuple[int, int]:
        self._need_frame()
        return network_size(self.frame_size)

    @property
    def crop_sizes(self) -> tuple:
        self._need_frame()
        return rcrop_sizes(self.frame_size)

    @property
    def crop_network_sizes(self) -> tuple:
        return tuple(crop_network_size(c, self.frame_size) for c in self.crop_sizes)

    def _need_frame(self):
        if self.frame_size is None:
            raise ValueError(f"dataset {self.name!r}: the frame size comes from the files; resolve it first "
                             "(datasets.resolve_frame_size)")

    def frame_intrinsics(self, raw_hw=None, focal=None) -> tuple:
        """fx, fy, cx, cy at the frame (after the frame crop) of a sample with raw size ``raw_hw``."""
        if self.intrinsics is not None:
            fx, fy, cx, cy = self.intrinsics
        else:  # no calibration: the MAI field of view scaled to this frame, principal point at the centre
            h, w = raw_hw if raw_hw is not None else self.frame_size
            fx, fy = MAI_INTRINSICS[0] * w / INPUT_WIDTH, MAI_INTRINSICS[1] * h / INPUT_HEIGHT
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        if focal is not None:
            fx = fy = float(focal)
        top, left = self.crop_offset(raw_hw)
        return float(fx), float(fy), float(cx - left), float(cy - top)

    def crop_offset(self, raw_hw) -> tuple[int, int]:
        """(top, left) of the frame crop in a raw frame of size ``raw_hw``."""
        if self.frame_crop != "kb" or raw_hw is None:
            return 0, 0
        return int(raw_hw[0] - KB_CROP[0]), int((raw_hw[1] - KB_CROP[1]) // 2)

    def eval_box(self, crop: str, h: int, w: int):
        """(r0, r1, c0, c1) of evaluation crop ``crop`` on an ``h`` x ``w`` frame, or None for "none"."""
        if crop == "none":
            return None
        if crop == "garg":
            a, b, c, d = GARG_CROP
        elif crop == "eigen" and self.eigen_crop == "kitti":
            a, b, c, d = EIGEN_CROP_KITTI
        elif crop == "eigen":
            r0, r1, c0, c1 = EIGEN_CROP_NYU
            if (h, w) == (INPUT_HEIGHT, INPUT_WIDTH):
                return r0, r1, c0, c1
            a, b, c, d = r0 / INPUT_HEIGHT, r1 / INPUT_HEIGHT, c0 / INPUT_WIDTH, c1 / INPUT_WIDTH
        else:
            raise InputError(f"--eval_crop must be one of {', '.join(EVAL_CROPS)}, got {crop!r}")
        return int(a * h), int(b * h), int(c * w), int(d * w)


MAI2022 = DatasetPreset(
    "mai2022", "pairs", "MAI 2022: ROOT/<split>/{rgb,depth}/<stem>.png, depth uint16 mm, 480x640")
NYU = DatasetPreset(
    "nyu", "nyu", "NYU Depth v2 (BTS layout): rgb_<id>.jpg + sync_depth_<id>.png (x1000), 480x640",
    intrinsics=NYU_INTRINSICS, max_depth=10.0, eval_crop="eigen", expect_p999=(3.0, 10.5),
    splits=("sync", "official_splits/test"))
KITTI = DatasetPreset(
    "kitti", "kitti", "KITTI depth: RGB image_0X/data/<f>.png + proj_depth/groundtruth (x256, sparse), KB crop "
    "352x1216", depth_scale=256.0, frame_size=KB_CROP, frame_crop="kb", intrinsics=KITTI_INTRINSICS,
    max_depth=80.0, eval_crop="garg", eigen_crop="kitti", min_valid=0.005, expect_p999=(25.0, 90.0),
    splits=("data_depth_annotated/train", "data_depth_annotated/val"), rgb_roots=("", "input", "raw", "kitti_raw"),
    depth_roots=("", "gt_depth", "data_depth_annotated/train", "data_depth_annotated/val",
                 "data_depth_annotated"), model="student_80m")
DIODE = DatasetPreset(
    "diode", "pairs", "DIODE, converted once to ROOT/<split>/{rgb,depth}/<stem>.png (depth x256), 768x1024",
    depth_scale=256.0, frame_size=(768, 1024), intrinsics=DIODE_INTRINSICS, max_depth=80.0,
    splits=("train", "val"), model="student_80m",
    convert="python -m litedepth_tf.convert --dataset diode --data_root DIODE/val --out data/diode --split val")
FOLDER = DatasetPreset(
    "folder", "pairs", "any ROOT/<split>/{rgb,depth}/ (or a split file) with --depth_scale, --depth_format, "
    "--max_depth, --intrinsics", frame_size=None, intrinsics=None,
    convert="python -m litedepth_tf.convert --dataset folder --depth_format npy --data_root ROOT --out OUT")

PRESETS = {p.name: p for p in (MAI2022, NYU, KITTI, DIODE, FOLDER)}
DEFAULT = MAI2022.name


def get_preset(name=None, depth_scale=None, depth_format=None, max_depth=None, intrinsics=None,
               frame_size=None, min_depth=None) -> DatasetPreset:
    """The preset ``name`` (a name or a preset; None = mai2022) with any non-None field overridden."""
    preset = name if isinstance(name, DatasetPreset) else PRESETS.get(name or DEFAULT)
    if preset is None:
        raise InputError(f"--dataset must be one of {', '.join(PRESETS)}, got {name!r}")
    changes = {}
    if depth_scale is not None:
        if not depth_scale > 0:
            raise InputError(f"--depth_scale must be > 0, got {depth_scale}")
        changes["depth_scale"] = float(depth_scale)
    if depth_format is not None:
        if depth_format not in DEPTH_FORMATS:
            raise InputError(f"--depth_format must be one of {', '.join(DEPTH_FORMATS)}, got {depth_format!r}")
        changes["depth_format"] = depth_format
    if max_depth is not None:
        if not max_depth > 0:
            raise InputError(f"--max_depth must be > 0, got {max_depth}")
        changes["max_depth"] = float(max_depth)
        if float(max_depth) != preset.max_depth:  # the plausible range belongs to the preset's own range
            changes["expect_p999"] = None
    if min_depth is not None:
        changes["min_depth"] = float(min_depth)
    if intrinsics is not None:
        k = tuple(float(x) for x in intrinsics)
        if len(k) != 4 or not all(v > 0 for v in k):
            raise InputError(f"--intrinsics must be 4 positive numbers fx,fy,cx,cy, got {intrinsics!r}")
        changes["intrinsics"] = k
    if frame_size is not None:
        changes["frame_size"] = tuple(int(v) for v in frame_size)
    return dataclasses.replace(preset, **changes) if changes else preset


# ------------------------------------------------------------------------------------------------ flags


def define_dataset_flags(fv, split_file_help="Split list (rgb depth [focal] per line, paths relative to "
                         "--data_root, 'None' = no GT) instead of listing --split.", intrinsics=True):
    """``--dataset``, ``--split_file`` and the preset overrides ``--depth_scale``, ``--depth_format``,
    ``--max_depth`` (and ``--intrinsics``) on ``fv`` (the same spelling in train, evaluate, data_check)."""
    d = dict(flag_values=fv)
    flags.DEFINE_enum("dataset", DEFAULT, list(PRESETS), "Data set preset "
                      "(litedepth_tf.data.datasets): layout, depth scale, frame size, valid range, eval crop.", **d)
    flags.DEFINE_string("split_file", None, split_file_help, **d)
    flags.DEFINE_float("depth_scale", None, "Stored depth values per metre (default: the dataset's: 1000 MAI/NYU, "
                       "256 KITTI/DIODE).", **d)
    flags.DEFINE_enum("depth_format", None, list(DEPTH_FORMATS), "Depth files: png16 (decoded in graph) "
                      "or npy (convert first: python -m litedepth_tf.convert).", **d)
    flags.DEFINE_float("max_depth", None, "Valid depth range top in metres (default: the dataset's).", **d)
    if intrinsics:
        flags.DEFINE_list("intrinsics", None, "fx,fy,cx,cy of the frames in pixels (default: the dataset's).", **d)


def define_size_flags(fv, what="The network input"):
    """``--dataset`` (no default) and ``--input_size``: the frame size a model is exported or run at (the same
    spelling in predict and export_tflite.py; read back with `frame_size_from_flags`)."""
    d = dict(flag_values=fv)
    flags.DEFINE_enum("dataset", None, list(PRESETS), f"{what} is this data set's frame size (e.g. kitti: 352x1216, "
                      "for a model exported with export_tflite.py --dataset kitti).", **d)
    flags.DEFINE_string("input_size", None, f"{what} size HxW (e.g. 352x1216; default 480x640, or the --dataset's).",
                        **d)


def frame_size_from_flags(fv, default=(INPUT_HEIGHT, INPUT_WIDTH)):
    """(H, W) of `define_size_flags`: --input_size, else the --dataset's frame size, else `default`."""
    if fv.input_size:
        return parse_size(fv.input_size, "--input_size")
    if fv.dataset:
        preset = get_preset(fv.dataset)
        if preset.frame_size is None:
            raise InputError(f"--dataset={fv.dataset} has no fixed frame size: give --input_size HxW")
        return preset.frame_size
    return default


def preset_from_flags(fv):
    """The `DatasetPreset` the flags describe (one error line naming the flag if a value is bad)."""
    try:
        k = None if not fv.intrinsics else [float(x) for x in fv.intrinsics]
    except ValueError:
        raise InputError(f"--intrinsics must be 4 numbers fx,fy,cx,cy, got {','.join(fv.intrinsics)}") from None
    return get_preset(fv.dataset, depth_scale=fv.depth_scale, depth_format=fv.depth_format,
                               max_depth=fv.max_depth, intrinsics=k)


# ------------------------------------------------------------------------------------------------ listing


@dataclasses.dataclass
class Listing:
    """Samples of one split: ``pairs`` ``(stem, rgb, depth)``, ``focals`` (per pair, None = the preset's),
    ``skipped_none`` (split-file lines without ground truth) and ``where`` (for messages)."""

    pairs: list
    focals: list
    skipped_none: int
    where: str


def _strip(p: str) -> str:
    return p[1:] if p[:1] in ("/", "\\") else p


def _resolve(root, path, roots):
    """First existing ``root/<r>/path`` over ``roots`` (an absolute path is taken as is) and the candidates."""
    if os.path.isabs(path) and os.path.isfile(path):
        return path, [path]
    rel = _strip(path)
    tried = [os.path.normpath(os.path.join(root, r, rel)) for r in roots]
    for p in tried:
        if os.path.isfile(p):
            return p, tried
    return None, tried


def _stem_of(path, root):
    """A file name unique within the split: the path below the root without extension, '/' -> '_'."""
    rel = os.path.relpath(path, root) if not os.path.relpath(path, root).startswith("..") else os.path.basename(path)
    return os.path.splitext(rel)[0].replace(os.sep, "_").replace("/", "_")


def read_split_file(preset: DatasetPreset, root, split_file, base=None) -> Listing:
    """The samples of a split file (see the module docstring); DatasetError naming the file and line numbers."""
    split_file = os.fspath(split_file)
    if not os.path.isfile(split_file):
        raise DatasetError(f"--split_file {split_file} does not exist")
    base = os.path.normpath(base if base is not None else root)
    pairs, focals, missing, skipped = [], [], [], 0
    with open(split_file, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) == 1:
                stem = os.path.splitext(_strip(parts[0]))[0]
                r, d = os.path.join(base, "rgb", stem + ".png"), os.path.join(base, "depth", stem + ".png")
                for kind, p in (("rgb", r), ("depth", d)):
                    if not os.path.isfile(p):
                        missing.append(f"{split_file}:{n}: {kind} file {p} does not exist")
                pairs.append((stem.replace("/", "_"), r, d))
                focals.append(None)
                continue
            if len(parts) > 3:
                raise DatasetError(f"{split_file}:{n}: expected 'rgb depth [focal]', got {len(parts)} fields: "
                                   f"{line[:120]!r}")
            if parts[1] == "None":
                skipped += 1
                continue
            focal = None
            if len(parts) == 3:
                try:
                    focal = float(parts[2])
                except ValueError:
                    raise DatasetError(f"{split_file}:{n}: focal {parts[2]!r} is not a number") from None
            r, r_tried = _resolve(base, parts[0], preset.rgb_roots)
            d, d_tried = _resolve(base, parts[1], preset.depth_roots)
            for kind, p, tried in (("rgb", r, r_tried), ("depth", d, d_tried)):
                if p is None:
                    missing.append(f"{split_file}:{n}: {kind} file {parts[0 if kind == 'rgb' else 1]} not found "
                                   f"under {base}" + (f" (tried {', '.join(tried)})" if len(tried) > 1 else
                                                      f" ({tried[0]})"))
            if r is not None and d is not None:
                pairs.append((_stem_of(r, base), r, d))
                focals.append(focal)
    if missing:
        more = f"; {len(missing) - 1} more missing" if len(missing) > 1 else ""
        raise DatasetError(missing[0] + more)
    if not pairs:
        raise DatasetError(f"--split_file {split_file} lists no sample with ground truth"
                           + (f" ({skipped} 'None' line(s) skipped)" if skipped else ""))
    return Listing(pairs, focals, skipped, f"{base} ({split_file})")


def _walk_files(base):
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            if not name.startswith("."):
                yield folder, name


def _list_nyu(base) -> list:
    """rgb_<id>.jpg|png with sync_depth_<id>.png in the same folder, anywhere below ``base``."""
    pairs, problems = [], []
    for folder, name in _walk_files(base):
        stem, ext = os.path.splitext(name)
        if stem.startswith("rgb_") and ext.lower() in IMAGE_EXTS:
            depth = os.path.join(folder, "sync_depth_" + stem[4:] + ".png")
            rgb = os.path.join(folder, name)
            if os.path.isfile(depth):
                pairs.append((_stem_of(rgb, base), rgb, depth))
            else:
                problems.append(f"{rgb}: no depth partner {depth}")
        elif stem.startswith("sync_depth_") and ext.lower() == ".png":
            if not any(os.path.isfile(os.path.join(folder, "rgb_" + stem[11:] + e)) for e in IMAGE_EXTS):
                problems.append(f"{os.path.join(folder, name)}: no rgb partner rgb_{stem[11:]}.jpg")
    return pairs, problems


def _list_kitti(preset, root, base) -> list:
    """Every ``.../<drive>/proj_depth/groundtruth/image_0X/<f>.png`` below ``base`` with its RGB frame
    ``<date>/<drive>/image_0X/data/<f>.png`` (date = the drive's first 10 characters) under one of the preset's
    RGB roots of ``root``."""
    pairs, problems = [], []
    for folder, name in _walk_files(base):
        parts = os.path.normpath(folder).split(os.sep)
        if len(parts) < 4 or parts[-3:-1] != ["proj_depth", "groundtruth"] or not name.endswith(".png"):
            continue
        drive, cam = parts[-4], parts[-1]
        rel = os.path.join(drive[:10], drive, cam, "data", name)
        rgb, tried = _resolve(root, rel, preset.rgb_roots)
        depth = os.path.join(folder, name)
        if rgb is None:
            problems.append(f"{depth}: no RGB frame (tried {', '.join(tried)})")
        else:
            pairs.append((f"{drive}_{cam}_{os.path.splitext(name)[0]}", rgb, depth))
    return pairs, problems


def _has_native_diode(base) -> bool:
    for _, name in _walk_files(base):
        if name.endswith("_depth.npy"):
            return True
    return False


def list_samples(preset: DatasetPreset, root, split=None, split_file=None) -> Listing:
    """The samples of ``root/split`` (or of ``split_file``, paths relative to ``root``) in the preset's layout,
    sorted by path; DatasetError naming the first problem otherwise."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"--data_root {root} is not a directory")
    if preset.depth_format == "npy":
        raise DatasetError(f"dataset {preset.name!r} with --depth_format=npy: tf.data cannot decode .npy in the "
                           f"graph; convert once to the PNG layout: {preset.convert or FOLDER.convert}")
    if split_file:
        listing = read_split_file(preset, root, split_file)
    else:
        base = os.path.normpath(os.path.join(root, split)) if split else os.path.normpath(root)
        if not os.path.isdir(base):
            raise DatasetError(f"split folder {base} does not exist (--dataset={preset.name}: "
                               f"{preset.summary})")
        if preset.layout == "pairs":
            if not os.path.isdir(os.path.join(base, "rgb")) and _has_native_diode(base):
                raise DatasetError(f"{base} holds DIODE's native .npy depth maps, which tf.data cannot decode in "
                                   f"the graph; convert once: {DIODE.convert}")
            try:
                pairs, problems = pair_files(base)
            except FileNotFoundError as err:
                raise DatasetError(f"{err} (--dataset={preset.name}: {preset.summary})") from None
            if problems:
                raise DatasetError(first_mismatch(base, pairs, problems))
        elif preset.layout == "nyu":
            pairs, problems = _list_nyu(base)
            if problems:
                raise DatasetError(f"{base}: {len(problems)} unpaired file(s), the first: {problems[0]}")
        elif preset.layout == "kitti":
            pairs, problems = _list_kitti(preset, root, base)
            if problems:
                raise DatasetError(f"{base}: {len(problems)} depth map(s) without RGB, the first: {problems[0]}")
        else:
            raise ValueError(f"unknown layout {preset.layout!r}")
        if not pairs:
            raise DatasetError(f"{base}: no samples in the {preset.name} layout ({preset.summary})")
        listing = Listing(sorted(pairs, key=lambda p: p[1]), [None] * len(pairs), 0, base)
    order = sorted(range(len(listing.pairs)), key=lambda i: listing.pairs[i][1])
    listing.pairs = [listing.pairs[i] for i in order]
    listing.focals = [listing.focals[i] for i in order]
    return listing


def find_splits(preset: DatasetPreset, root) -> list:
    """Splits of ``root`` to check when none is named: the pairs layout: every sub-folder with rgb/ or depth/
    (or ``.``); other layouts: the preset's default splits that exist, else ``.``."""
    root = os.fspath(root)
    if preset.layout == "pairs":
        if os.path.isdir(os.path.join(root, "rgb")) or os.path.isdir(os.path.join(root, "depth")):
            return ["."]
        return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "rgb"))
                      or os.path.isdir(os.path.join(root, d, "depth")))
    have = [s for s in preset.splits if os.path.isdir(os.path.join(root, s))]
    return have or ["."]


def raw_size(path) -> tuple[int, int]:
    """(H, W) from an image file's header (PNG or JPEG)."""
    w, h = read_image_header(path)[:2]
    return h, w


def resolve_frame_size(preset: DatasetPreset, pairs) -> DatasetPreset:
    """A preset whose frame size comes from the files (``folder``): the first RGB frame's size."""
    if preset.frame_size is not None or not pairs:
        return preset
    try:
        return dataclasses.replace(preset, frame_size=raw_size(pairs[0][1]))
    except (OSError, ValueError) as err:
        raise DatasetError(f"{pairs[0][1]}: cannot read the frame size ({err})") from None


def frame_size_problem(preset: DatasetPreset, path, hw) -> str | None:
    """The one-line problem of a raw frame size for the preset (None if fine)."""
    if preset.frame_size is None:
        return None
    fh, fw = preset.frame_size
    if preset.frame_crop == "kb":
        if hw[0] < fh or hw[1] < fw:
            return (f"{path}: size {hw[0]}x{hw[1]} is smaller than the {preset.name} frame crop {fh}x{fw} "
                    f"(--dataset={preset.name})")
        return None
    if tuple(hw) != (fh, fw):
        return f"{path}: size {hw[0]}x{hw[1]}, expected {fh}x{fw} for --dataset={preset.name}"
    return None


def check_dataset(preset: DatasetPreset, root, splits=None, split_file=None, size="preset", min_valid=None,
                  workers=2, progress=True) -> dict:
    """`data.check` for any preset: ``{split (or split-file name): entry}`` as `check.check_dataset`, with the
    preset's depth scale, frame size (KITTI: at least the crop), valid range and valid-fraction warning level,
    plus a scale check of each split (`check.scale_problem`, not for mai2022) and ``skipped_none`` (split-file
    lines without ground truth)."""
    if split_file:
        targets = [(os.path.basename(os.fspath(split_file)), None, split_file)]
    else:
        targets = [(s, s, None) for s in (splits or find_splits(preset, root))]
    report = {}
    for name, split, sf in targets:
        entry = new_entry()
        report[name] = entry
        try:
            listing = list_samples(preset, root, split, sf)
        except DatasetError as err:
            entry["errors"].append(str(err))
            entry["bad_files"].append(os.fspath(sf) if sf else os.path.normpath(os.path.join(root, split or ".")))
            continue
        entry["pairs"], entry["skipped_none"] = len(listing.pairs), listing.skipped_none
        p = resolve_frame_size(preset, listing.pairs)
        check_pairs(entry, listing.pairs, f"check {name}", workers, progress,
                    p.frame_size if size == "preset" else size, p.max_depth,
                    p.min_valid if min_valid is None else min_valid, p.depth_scale, p.frame_crop == "kb",
                    histogram=p.name != MAI2022.name)
        hist = entry.pop("hist", None)
        if hist is not None:
            msg = scale_problem(hist, p.depth_scale, p.max_depth, p.expect_p999, listing.where, p.name)
            if msg:
                entry["errors"].append(msg)
                entry["bad_files"].append(listing.where)
    return report
