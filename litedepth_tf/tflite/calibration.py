"""Calibration images for full-integer (int8) TFLite export, drawn from the real evaluation pipeline.

    rep = representative_images("data/synthetic", "train", 64)       # checks the split now, reads it later
    converter.representative_dataset = rep                             # yields [float32 [1, 480, 640, 3]]
    export_tflite(model, "m_int8.tflite", "int8", representative_images=rep)

The images are exactly what the deployed model sees at evaluation time: `input_pipeline.make_dataset(root, split, 1,
training=False)` (no augmentation, full 480x640 frames, raw RGB float32 0..255). Which `n` images: a fixed
pseudo-random subset of the split's pairs (`numpy.random.default_rng(seed)`, without replacement), then taken in
file order, so the same `(root, split, n, seed)` always calibrates on the same files (`rep.stems` lists them).
`n` larger than the split, or `n <= 0`, uses every pair.

A missing split, a split without PNG pairs or malformed files raise a ValueError naming the folder (at call
time, before the converter starts).
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from litedepth_tf.data.pipeline import list_pairs, make_dataset

_PLAIN_STEM = re.compile(r"^[^\s#]+$")  # stems a `file_list` line can carry unchanged


class RepresentativeImages:
    """A re-iterable calibration set: calling it returns a fresh generator of `[float32 [1, H, W, 3]]`."""

    def __init__(self, data_root, split: str, n: int, seed: int = 0, dataset=None, split_file=None):
        self.data_root, self.split, self.seed = os.fspath(data_root), split, int(seed)
        self.data_kw = {} if dataset is None and split_file is None else dict(dataset=dataset, split_file=split_file)
        try:
            pairs = list_pairs(self.data_root, split, **self.data_kw)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"calibration split {split!r} under {self.data_root!r} is unusable: {err}") from err
        total = len(pairs)
        n = total if n is None or n <= 0 else min(int(n), total)
        chosen = np.sort(np.random.default_rng(self.seed).choice(total, size=n, replace=False))
        self.pairs = [pairs[i] for i in chosen]
        self.total = total

    @property
    def stems(self) -> list[str]:
        return [p[0] for p in self.pairs]

    @property
    def rgb_paths(self) -> list[str]:
        return [p[1] for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def _dataset(self, tmp_dir):
        if len(self.pairs) == self.total:
            return make_dataset(self.data_root, self.split, 1, training=False, deterministic=True, **self.data_kw)
        if self.data_kw:  # another data set: stream it and keep the chosen frames (see __call__)
            return None
        if all(_PLAIN_STEM.match(s) for s in self.stems):
            lines = self.stems  # `stem` lines: rgb/<stem>.png + depth/<stem>.png under root/split
        else:
            return None
        file_list = os.path.join(tmp_dir, "calibration_files.txt")
        with open(file_list, "w") as f:
            f.write("\n".join(lines) + "\n")
        return make_dataset(self.data_root, self.split, 1, training=False, deterministic=True, file_list=file_list)

    def __call__(self):
        with tempfile.TemporaryDirectory(prefix="litedepth_calib_") as tmp:
            ds = self._dataset(tmp)
            if ds is not None:
                for batch in ds:
                    yield [batch["image"].numpy().astype(np.float32)]
                return
            # stems with spaces or '#': stream the whole split and keep the chosen ones (same images, slower)
            wanted = {p[1] for p in self.pairs}
            ds = make_dataset(self.data_root, self.split, 1, training=False, deterministic=True, **self.data_kw)
            for batch in ds:
                if batch["rgb_path"][0].numpy().decode() in wanted:
                    yield [batch["image"].numpy().astype(np.float32)]


def representative_images(data_root, split: str, n: int, seed: int = 0, dataset=None,
                          split_file=None) -> RepresentativeImages:
    """`n` deterministic calibration images of `data_root/split` from the evaluation pipeline (see module doc);
    ``dataset`` / ``split_file``: another data set's frames (`data.datasets`), at its frame size.

    Returns a callable for `TFLiteConverter.representative_dataset`; each call yields `[np.float32 [1,H,W,3]]`
    `len(rep)` times."""
    return RepresentativeImages(data_root, split, n, seed, dataset, split_file)
