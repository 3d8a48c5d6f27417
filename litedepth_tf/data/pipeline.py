"""tf.data input pipeline for MAI-layout RGB-D data (``ROOT/<split>/{rgb,depth}/*.png``).

``make_dataset(root, split, batch_size, training, seed)`` yields dicts (see WORKSPACE.md):

* ``image`` float32 raw RGB 0..255: training ``[B, crop_h*128/480, crop_w*160/640, 3]``, eval ``[B, 480, 640, 3]``
* ``depth`` float32 metres (0 = invalid, > ``max_depth`` made invalid), ``[B, crop_h, crop_w, 1]`` / full size
* ``valid`` float32 1/0 (``depth > 0``), ``intrinsics`` ``[B, 4]`` fx, fy, cx, cy at the depth resolution,
  ``rgb_path``. The losses derive everything else (the ground truth at the prediction's resolution, its
  differences) from ``depth`` themselves (`litedepth_tf.training.losses`).

Files are paired by sorted file stem (an unpaired file -> ValueError naming the first mismatch); every PNG header
is checked before the graph is built (bit depth, channels, sizes; every bad file is named). Decoding is
``tf.io.decode_png`` (depth as uint16 millimetres). No ``py_function`` anywhere.

Training graph (R-crop, see ``litedepth_tf.data.augment``):
  file pairs -> per-epoch stateless shuffle -> [parallel map, per element] decode (kept uint8 / uint16) and draw
  the rotation angle (p=0.5, +-2.5 deg, about the principal point) and the flip (p=0.5) -> ``batch(
  drop_remainder=True)`` -> [parallel map, per batch] ONE crop size per batch, a random offset per element, then
  ``augment.rcrop_batch``: rotate + flip + crop (+ resize of the image to the network scale) fused into one
  projective warp per element that computes only the output pixels (depth nearest with invalid padding, image
  bilinear) -> colour augmentation, valid mask -> prefetch. Rotating full frames first and
  cropping afterwards gives the same result but cost half the pipeline's throughput.

Variable crop sizes: **one crop size is sampled per batch** (not padded batching). Why: every element of a batch
then has real pixels only, so no compute is wasted on padding and no loss needs to know about padded image
borders (padding the image with a mean colour would feed the network artificial content next to real content,
and BatchNorm statistics would see it); the model is fully convolutional, so a batch of any of the three sizes
runs unchanged. Cropping after batching costs one batched gather, and per-element randomness (rotation, flip,
offset, colour) is kept. The price is a dynamic spatial shape (``None``) in the element spec.

Determinism: every random draw is a stateless op seeded by ``(seed, global element index)`` (batch-level draws by
the batch's first element index), and the per-epoch shuffle is a stateless permutation of ``(seed, epoch)``; so a
fixed ``seed`` with ``deterministic=True`` gives identical batches on every run, whatever the parallelism.
``deterministic=False`` lets tf.data return elements out of order (faster); ``seed=None`` draws a fresh seed.

Evaluation: no augmentation, full-resolution image and depth, batches in file order, one pass.

Bad samples (``on_bad_sample``, default ``"skip"``, training and evaluation): a pair whose file cannot be read
(missing, deleted after listing, no permission), cannot be decoded (random bytes, truncated, not a PNG), has the
wrong size / mode, or whose depth map has no valid pixel (all 0 or beyond ``max_depth``) is dropped with one
warning per file naming the file and the problem (logger ``litedepth_tf.data.pipeline``), and counted in the
caller's ``bad_sample_counter`` (`data.bad_samples`; the trainer logs its run's as ``data/skipped_samples``). ``"fail"`` raises instead (``BadSampleError`` before the graph runs, a
``tf.errors.OpError`` carrying the same message from inside it; ``bad_sample_error(err)`` turns that into the
one-line ``BadSampleError``, as ``train.run`` and ``evaluate`` do). "Every sample is bad" counts only the pairs
that passed the header checks. Where the check happens:

* header problems (signature, bit depth, channels, size; 33 bytes a file) when the dataset is built;
* ``cache_in_memory``: decode / all-invalid errors while filling the cache (the pair is left out of the cache);
* streaming: per element, the decode runs in a one-element inner dataset, ``from_tensors -> map(decode + checks)
  -> ignore_errors()``, followed by a lazily built placeholder element with ``_ok = False`` that only exists when
  the decode failed (``concatenate(...).take(1).get_single_element()``); a ``filter`` drops it. Only a failure
  runs Python: the placeholder's ``tf.py_function`` re-checks the pair with ``data_check.check_pair`` (PIL) to
  name the problem, logs, counts (or raises with ``"fail"``). The good path stays graph-only: no ``py_function``
  call, same parallel map, same order; a split whose every sample turns out bad raises (no endless skipping).

Custom folders: ``split`` is any folder name under ``root`` (``"."`` for ``root`` itself). ``file_list`` is a
text file with one sample per line, either a stem (``rgb/<stem>.png`` + ``depth/<stem>.png``) or two paths
``rgb depth`` (relative to ``root/split`` or absolute); ``#`` starts a comment.

Other data sets (``dataset=`` a `data.datasets` preset name or preset; default mai2022): the preset lists the
samples (its layout, or ``split_file`` in the toolboxes' ``rgb depth [focal]`` format, paths relative to
``root``), fixes the depth scale (stored value per metre), the frame size (KITTI: the bottom-centre 352x1216 crop,
cut in the graph from each raw frame), the per-sample intrinsics (the split file's focal; the crop's shift of
the principal point), the valid range, the R-crop sizes and their network input sizes. RGB may be PNG or JPEG
(``tf.io.decode_png`` / ``decode_jpeg`` / ``decode_image``), depth a 16-bit PNG: still graph-only. The MAI layout
takes exactly the path described above.
"""

from __future__ import annotations

import logging
import os
import secrets

import numpy as np
import tensorflow as tf

from litedepth_tf.common.constants import DEPTH_SCALE, INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.common.progress import track
from litedepth_tf.data import augment, datasets
from litedepth_tf.data.bad_samples import (
    BadSampleError,
    _BadSamples,
    diagnose_pair,
)
from litedepth_tf.data.check import check_headers, first_mismatch, header_problems, pair_files

CROP_SIZES = augment.CROP_SIZES
AUTOTUNE = tf.data.AUTOTUNE
_PERM_OFFSET = 1 << 40
_BATCH_OFFSET = 1 << 41
log = logging.getLogger("litedepth_tf.data.pipeline")




def _read_file_list(path, base):
    pairs, missing = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) == 1:
                stem = os.path.splitext(parts[0])[0]
                r, d = os.path.join(base, "rgb", stem + ".png"), os.path.join(base, "depth", stem + ".png")
            elif len(parts) == 2:
                r, d = (p if os.path.isabs(p) else os.path.join(base, p) for p in parts)
                stem = os.path.splitext(os.path.basename(r))[0]
            else:
                raise ValueError(f"{path}:{n}: expected 'stem' or 'rgb_path depth_path', got {line!r}")
            for p in (r, d):
                if not os.path.isfile(p):
                    missing.append(f"{path}:{n}: {p} does not exist")
            pairs.append((stem, r, d))
    if missing:
        raise ValueError(f"file list {path}: {len(missing)} missing file(s):\n  " + "\n  ".join(missing))
    if not pairs:
        raise ValueError(f"file list {path} is empty")
    return pairs


def list_pairs(root, split, file_list=None, check=True, size=(INPUT_HEIGHT, INPUT_WIDTH), dataset=None,
               split_file=None):
    """Sorted ``(stem, rgb_path, depth_path)`` list for a split (or a file list), validated as described above.
    With ``dataset`` (a preset or its name) or ``split_file``: the preset's listing (`datasets.list_samples`)."""
    if dataset is not None or split_file is not None:
        preset = datasets.get_preset(dataset)
        listing = datasets.list_samples(preset, root, split, split_file)
        if check:
            preset = datasets.resolve_frame_size(preset, listing.pairs)
            bad = check_headers(listing.pairs, preset.frame_size, preset.frame_crop == "kb")
            if bad:
                raise datasets.DatasetError(f"{len(bad)} malformed file(s) in {listing.where}, the first: {bad[0]} "
                                            f"(python -m litedepth_tf.data_check --dataset={preset.name} for all)")
        return listing.pairs
    base = os.path.normpath(os.path.join(root, split)) if split else os.path.normpath(root)
    if file_list is not None:
        pairs = _read_file_list(file_list, base)
    else:
        if not os.path.isdir(base):
            raise FileNotFoundError(f"split folder {base} does not exist")
        pairs, problems = pair_files(base)
        if problems:
            raise ValueError(first_mismatch(base, pairs, problems))
        if not pairs:
            raise ValueError(f"{base}: no PNG pairs in rgb/ and depth/")
    if check:
        bad = check_headers(pairs, size)
        if bad:
            raise ValueError(f"{len(bad)} malformed file(s) under {base} (run `python -m litedepth_tf.data_check "
                             f"{root}` for a full report):\n  " + "\n  ".join(bad))
    return pairs


def decode_pair(rgb_path, depth_path, max_depth=MAX_DEPTH, size=(INPUT_HEIGHT, INPUT_WIDTH), as_float=True):
    """TF ops: PNG paths -> (image float32 [H, W, 3] 0..255, depth float32 [H, W, 1] metres, 0 = invalid).

    ``as_float=False`` returns the raw uint8 image and uint16 millimetre depth instead.
    """
    image = tf.io.decode_png(tf.io.read_file(rgb_path), channels=3, dtype=tf.uint8)
    depth = tf.io.decode_png(tf.io.read_file(depth_path), channels=1, dtype=tf.uint16)
    if size is not None:
        ok = tf.reduce_all(tf.equal(tf.shape(image)[:2], size)) & tf.reduce_all(tf.equal(tf.shape(depth)[:2], size))
        tf.debugging.Assert(ok, ["unexpected frame size", rgb_path, tf.shape(image), depth_path, tf.shape(depth)])
        image = tf.ensure_shape(image, [size[0], size[1], 3])
        depth = tf.ensure_shape(depth, [size[0], size[1], 1])
    if not as_float:
        return image, depth
    depth = tf.cast(depth, tf.float32) / DEPTH_SCALE
    depth = tf.where(depth > max_depth, 0.0, depth)
    return tf.cast(image, tf.float32), depth


def _max_depth_mm(max_depth, scale=DEPTH_SCALE):
    """Largest uint16 value that is valid depth (``v / scale <= max_depth``)."""
    return int(min(65535, np.floor(max_depth * scale)))


def frame_decoder(preset, size, rgb_paths, max_depth=MAX_DEPTH):
    """``decode(rgb_path, depth_path) -> (uint8 [H, W, 3], uint16 [H, W, 1])`` TF ops for the preset's files at
    the frame ``size``: `decode_pair` for plain PNG frames (the MAI path), else PNG/JPEG RGB and the preset's
    frame crop (KITTI: bottom-centre, top = H - crop_h, left = (W - crop_w) // 2) with the size checks."""
    exts = {os.path.splitext(p)[1].lower() for p in rgb_paths}
    if preset.frame_crop == "none" and exts <= {".png"}:
        return lambda r, d: decode_pair(r, d, max_depth, size, as_float=False)
    if exts <= {".png"}:
        def rgb_op(data):
            return tf.io.decode_png(data, channels=3, dtype=tf.uint8)
    elif exts <= {".jpg", ".jpeg"}:
        def rgb_op(data):
            return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")  # closest to PIL's
    else:
        def rgb_op(data):
            return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)

    def decode(rgb_path, depth_path):
        image = rgb_op(tf.io.read_file(rgb_path))
        depth = tf.io.decode_png(tf.io.read_file(depth_path), channels=1, dtype=tf.uint16)
        hw, dhw = tf.shape(image)[:2], tf.shape(depth)[:2]
        same = tf.reduce_all(tf.equal(hw, dhw))
        if preset.frame_crop == "kb":
            ok = same & tf.reduce_all(hw >= size)
            tf.debugging.Assert(ok, ["frame smaller than the crop or rgb/depth sizes differ", rgb_path, hw,
                                     depth_path, dhw])
            top, left = hw[0] - size[0], (hw[1] - size[1]) // 2
            image = image[top:top + size[0], left:left + size[1]]
            depth = depth[top:top + size[0], left:left + size[1]]
        else:
            ok = same & tf.reduce_all(tf.equal(hw, size))
            tf.debugging.Assert(ok, ["unexpected frame size", rgb_path, hw, depth_path, dhw])
        return tf.ensure_shape(image, [size[0], size[1], 3]), tf.ensure_shape(depth, [size[0], size[1], 1])

    return decode


def sample_intrinsics(preset, pairs, focals=None):
    """``[N, 4]`` float64 fx, fy, cx, cy at each sample's frame (after the frame crop): the preset's intrinsics
    (or the split file's focal) and the crop's shift of the principal point (raw sizes from the headers)."""
    focals = focals or [None] * len(pairs)
    need_raw = preset.frame_crop != "none" or preset.intrinsics is None
    rows = []
    for (_, rgb, _), focal in zip(pairs, focals):
        raw = datasets.raw_size(rgb) if need_raw else None
        rows.append(preset.frame_intrinsics(raw, focal))
    return np.asarray(rows, np.float64).reshape(-1, 4)


def _decode_all(pairs, size, max_depth=MAX_DEPTH, bad=None, decode=None, scale=DEPTH_SCALE, check_kw=None):
    """Pairs decoded once into two host-memory tensors (uint8 [N,H,W,3], uint16 [N,H,W,1]); a pair that cannot
    be decoded or has no valid depth pixel is reported to ``bad`` and left out. Returns (tensors, kept)."""

    images = np.empty((len(pairs), size[0], size[1], 3), np.uint8)
    depths = np.empty((len(pairs), size[0], size[1], 1), np.uint16)
    kept, top = [], _max_depth_mm(max_depth, scale)
    check_kw = check_kw or {}
    if decode is None:
        def decode(r, d):
            return decode_pair(r, d, size=size, as_float=False)
    for pair in track(pairs, desc="cache decoded frames", unit="pair"):
        _, rgb, dep = pair
        try:
            image, depth = decode(rgb, dep)
            image, depth = image.numpy(), depth.numpy()
            ok = bool(((depth > 0) & (depth <= top)).any())
        except (tf.errors.OpError, OSError, ValueError):
            ok = False
        if not ok:
            if bad is None:
                raise BadSampleError("; ".join(diagnose_pair(rgb, dep, size, max_depth, **check_kw)))
            bad.report((rgb, dep), diagnose_pair(rgb, dep, size, max_depth, **check_kw))
            continue
        images[len(kept)], depths[len(kept)] = image, depth
        kept.append(pair)
    if not kept:
        raise BadSampleError(f"no usable pair to cache: all {len(pairs)} are bad")
    # constant tensors, not tf.Variables: a variable read is a stateful op, and under op determinism (--deterministic)
    # one stateful op in a tf.data function turns prefetching and every parallel map of the pipeline off
    with tf.device("/CPU:0"):
        return (tf.constant(images[:len(kept)]), tf.constant(depths[:len(kept)])), kept


def _usable_pairs(root, split, file_list, check_files, size, bad, preset=None, split_file=None):
    """list_pairs, with header problems reported to ``bad`` (skip) or raised as one BadSampleError naming every
    malformed file (fail). Returns (pairs, per-pair split-file focals or None, the preset with its frame size)."""
    focals = None
    if preset is not None and (split_file is not None or preset.layout != "pairs"):
        listing = datasets.list_samples(preset, root, split, split_file)
        pairs, focals = listing.pairs, listing.focals
        if listing.skipped_none:
            log.info("%s: %d split-file line(s) without ground truth ('None') skipped", listing.where,
                     listing.skipped_none)
    else:
        pairs = list_pairs(root, split, file_list, check=False, size=size)
    if preset is not None:
        preset = datasets.resolve_frame_size(preset, pairs)
        size = preset.frame_size if size is None else size
    at_least = preset is not None and preset.frame_crop == "kb"
    kept = []
    if not check_files:
        return pairs, focals, preset, size
    if bad.mode == "fail":
        problems = check_headers(pairs, size, at_least)
        if problems:
            raise BadSampleError(f"{len(problems)} malformed file(s) in {bad.where} (on_bad_sample=fail; run "
                                 f"`python -m litedepth_tf.data_check {root}` for a full report):\n  "
                                 + "\n  ".join(problems))
        return pairs, focals, preset, size
    kept_focals = []
    for j, pair in enumerate(pairs):
        problems = header_problems(pair[1], pair[2], size, at_least)
        if problems:
            bad.report((pair[1], pair[2]), problems)
        else:
            kept.append(pair)
            kept_focals.append(None if focals is None else focals[j])
    if not kept:
        raise BadSampleError(f"{bad.where}: all {len(pairs)} pairs are malformed (run `python -m "
                             f"litedepth_tf.data.check {root}` for a full report)")
    return kept, (None if focals is None else kept_focals), preset, size


def _guarded_map(load, placeholder):
    """``load(g, i)`` run in a one-element inner dataset whose errors are dropped; on an error the lazily built
    ``placeholder(g, i)`` (``_ok = False``) is returned instead. The good path runs no Python."""

    def fn(g, i):
        good = tf.data.Dataset.from_tensors((g, i)).map(load).ignore_errors()
        fallback = tf.data.Dataset.from_tensors((g, i)).map(placeholder)
        return good.concatenate(fallback).take(1).get_single_element()

    return fn


def _zeros_like_spec(spec):
    shape = [1 if d is None else d for d in spec.shape]
    return tf.fill(shape, "") if spec.dtype == tf.string else tf.zeros(shape, spec.dtype)


def _targets(out):
    out["valid"] = tf.cast(out["depth"] > 0, tf.float32)
    return out


def make_dataset(root, split, batch_size, training, seed=None, deterministic=False, crop_sizes=None,
                 intrinsics=None, max_depth=None, file_list=None, repeat=None, shuffle=None,
                 rotate_prob=0.5, max_rotate_degrees=2.5, flip_prob=0.5, color_prob=1.0,
                 image_size=None, drop_remainder=None, check_files=True,
                 cache_in_memory=False, num_parallel_calls=AUTOTUNE, prefetch=AUTOTUNE, on_bad_sample="skip",
                 bad_sample_counter=None, depth_stride=1, dataset=None, split_file=None):
    """Build the dataset (see the module docstring).

    Args:
      root, split: data under ``root/split/{rgb,depth}``; ``split`` may be any folder name.
      batch_size: elements per batch.
      training: R-crop + colour augmentation, shuffled, repeated; else full frames in file order, one pass.
      seed: int for reproducible shuffling / augmentation; ``None`` draws one.
      deterministic: keep element order fixed across parallel maps (needed for bit-identical batches).
      crop_sizes: R-crop sizes (h, w) at the frame resolution; one is drawn per batch (default: the preset's;
        MAI: 240x384, 360x512, 480x640).
      intrinsics: fx, fy, cx, cy of the frames, for every sample (default: the preset's, per sample).
      max_depth: depth beyond this (metres) becomes invalid (default: the preset's; MAI 40 m).
      file_list: optional text file of stems or ``rgb depth`` path pairs (instead of listing the folders).
      repeat: True = forever, int = that many epochs; default forever for training, once for evaluation.
      shuffle: default = training.
      rotate_prob, max_rotate_degrees, flip_prob, color_prob: augmentation settings (training only); colour
        augmentation is applied to every batch by default, as in the authors' config (ColorAug prob=1).
      image_size: expected frame size (checked on headers and in the graph; default: the preset's).
      drop_remainder: default True for training (fixed batch size), False for evaluation.
      check_files: validate every PNG header before building the graph.
      cache_in_memory: decode every frame once (uint8 RGB + uint16 depth, ~1.5 MB a pair at 480x640) into a
        host-memory tensor (a constant, not a tf.Variable: see `_decode_all`) and gather from it instead of
        decoding PNGs every epoch. For small sets (the synthetic demo: 400 pairs ~ 0.6 GB); PNG decoding is the
        pipeline's bottleneck on a 2-core machine.
        Training only (evaluation reads every file once anyway).
      on_bad_sample: "skip" (drop, warn once per file, count) or "fail" (raise naming the file); see the module
        docstring.
      bad_sample_counter: optional ``BadSampleCounter`` that also records this dataset's drops.
      depth_stride: training only: the depth targets (and ``valid``, ``intrinsics``) on every
        ``depth_stride``-th pixel of the R-crop instead of all of them (1 = native crop resolution, the paper's
        recipe). The losses cost ~stride^2 less; the network input is unchanged.
      dataset: a `data.datasets` preset (or its name; default mai2022): layout, depth scale, frame size and crop,
        intrinsics, valid range, R-crop sizes (see the module docstring).
      split_file: the toolboxes' split list (``rgb depth [focal]`` per line, paths relative to ``root``) instead
        of listing ``root/split``.
    """
    preset = datasets.get_preset(dataset)
    where = os.path.normpath(os.path.join(root, split)) if split else os.path.normpath(root)
    listed_in = split_file if split_file is not None else file_list
    bad = _BadSamples(on_bad_sample, where if listed_in is None else f"{where} ({listed_in})", bad_sample_counter)
    pairs, focals, preset, image_size = _usable_pairs(root, split, file_list, check_files, image_size, bad, preset,
                                                      split_file)
    image_size = tuple(image_size)
    max_depth = preset.max_depth if max_depth is None else max_depth
    scale = float(preset.depth_scale)
    if crop_sizes is None:
        crop_sizes = preset.crop_sizes if image_size == tuple(preset.frame_size) else datasets.rcrop_sizes(image_size)
    crop_sizes = tuple(tuple(int(v) for v in c) for c in crop_sizes)
    net = datasets.network_size(image_size)
    image_sizes = tuple(datasets.crop_network_size(c, image_size, net) for c in crop_sizes)
    if image_sizes == tuple(augment.image_size_for_crop(*c) for c in crop_sizes):
        image_sizes = None  # the paper's 480x640 -> 128x160 scale: augment's own rule (the MAI path)
    check_kw = {} if preset.name == datasets.MAI2022.name else dict(depth_scale=scale,
                                                                      at_least=preset.frame_crop == "kb")
    decode = frame_decoder(preset, image_size, [p[1] for p in pairs], max_depth)
    cached = None
    if cache_in_memory and training:  # evaluation reads every file once anyway
        keep = {p[1]: j for j, p in enumerate(pairs)}
        cached, pairs = _decode_all(pairs, image_size, max_depth, bad, decode, scale, check_kw)
        focals = None if focals is None else [focals[keep[p[1]]] for p in pairs]
    n = len(pairs)
    bad.expect(n)
    shuffle = training if shuffle is None else shuffle
    repeat = (True if training else 1) if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    if seed is None:
        seed = secrets.randbits(31)
    seed = int(seed)
    rgb_paths = tf.constant([p[1] for p in pairs])
    depth_paths = tf.constant([p[2] for p in pairs])
    if intrinsics is not None:
        k_rows = np.tile(np.asarray(intrinsics, np.float64).reshape(1, 4), (n, 1))
    else:
        k_rows = sample_intrinsics(preset, pairs, focals)
    if np.all(k_rows == k_rows[:1]):  # one camera (MAI): a constant, as before per-sample intrinsics
        k0, k_table = tf.constant(tuple(float(v) for v in k_rows[0]), tf.float32), None
    else:
        k0, k_table = None, tf.constant(k_rows, tf.float32)

    def epoch(e):
        if shuffle:
            perm = tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.constant(seed, tf.int64),
                                                                           _PERM_OFFSET + e])))
        else:
            perm = tf.range(n)
        g = e * n + tf.range(n, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices((g, tf.cast(perm, tf.int64)))

    num_epochs = (1 << 62) if repeat is True else 1 if repeat is False else int(repeat)
    ds = tf.data.Dataset.range(num_epochs).flat_map(epoch)
    top_mm = _max_depth_mm(max_depth, scale)

    def decode_checked(i):
        image, depth = decode(rgb_paths[i], depth_paths[i])
        has_valid = tf.reduce_any((depth > 0) & (depth <= tf.constant(top_mm, tf.uint16)))
        with tf.control_dependencies([tf.debugging.Assert(has_valid, ["no valid depth pixel", depth_paths[i]])]):
            return tf.identity(image), tf.identity(depth)

    def load(g, i):
        if training:  # keep uint8 / uint16 until the fused warp: 2.5x less memory per batch
            if cached is not None:
                image, depth = cached[0][i], cached[1][i]
            else:
                image, depth = decode_checked(i)
            s = tf.stack([tf.constant(seed, tf.int64), g])
            angle, flip = augment.random_rotate_flip_params(s, rotate_prob, max_rotate_degrees, flip_prob)
            out = dict(image=image, depth=depth, intrinsics=k0 if k_table is None else k_table[i],
                       rgb_path=rgb_paths[i], _angle=angle, _flip=flip, _g=g)
        else:
            image, depth = decode_checked(i)
            depth = tf.cast(depth, tf.float32) / scale
            out = dict(image=tf.cast(image, tf.float32), depth=tf.where(depth > max_depth, 0.0, depth),
                       intrinsics=k0 if k_table is None else k_table[i], rgb_path=rgb_paths[i])
        if cached is None:  # decoded here: may fail
            out["_ok"] = tf.constant(True)
        return out

    def placeholder(g, i):  # only built when load(g, i) failed: report (Python), then a dummy that is filtered out
        done = tf.py_function(lambda r, d: bad.report_in_graph(r, d, image_size, max_depth, **check_kw),
                              [rgb_paths[i], depth_paths[i]], tf.int32)
        with tf.control_dependencies([done]):
            out = {k: _zeros_like_spec(v) for k, v in spec.items()}
            out["_ok"] = tf.constant(False) & tf.equal(done, 0)
        return out

    def finish(b):
        b.pop("_ok", None)
        return _targets(b)

    def crop(b):
        b.pop("_ok", None)
        s = augment.split_seed(tf.stack([tf.constant(seed, tf.int64), _BATCH_OFFSET + b.pop("_g")[0]]), 2)
        # the depth warp is a nearest-neighbour sample (fill 0): scaling to metres and dropping far pixels
        # after it gives the same values, on the crop's pixels only instead of the whole frame
        image, depth, k, _ = augment.rcrop_batch(b["image"], tf.cast(b["depth"], tf.float32), b["intrinsics"],
                                                 b.pop("_angle"), b.pop("_flip"), s[0], crop_sizes,
                                                 depth_stride=depth_stride, image_sizes=image_sizes)
        depth = depth / scale
        depth = tf.where(depth > max_depth, 0.0, depth)
        # the warp of uint8 frames rounds to integers: colour by a 256-entry table per element and channel
        colour = augment.color_augment_table if b["image"].dtype == tf.uint8 else augment.color_augment
        b["image"] = colour(image, s[1], prob=color_prob)
        b["depth"], b["intrinsics"] = depth, k
        return _targets(b)

    in_order = bool(deterministic) or not training  # evaluation: file order, whatever `deterministic` says
    if cached is None:  # decoding can fail: guarded map + filter (see the module docstring)
        spec = tf.data.Dataset.from_tensors((tf.constant(0, tf.int64), tf.constant(0, tf.int64))).map(
            load).element_spec
        ds = ds.map(_guarded_map(load, placeholder), num_parallel_calls=num_parallel_calls,
                    deterministic=in_order)
        ds = ds.filter(lambda e: e["_ok"])
    else:
        ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if not training:
        ds = ds.map(finish, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training:
        ds = ds.map(crop, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if prefetch:
        ds = ds.prefetch(prefetch)
    opts = tf.data.Options()
    opts.deterministic = bool(deterministic)
    return ds.with_options(opts)
