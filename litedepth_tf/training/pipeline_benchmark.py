"""Input-pipeline throughput against the student's train step (the library behind
``export/benchmark_pipeline.py``).

* `pipeline_images_per_second`: ``make_dataset(root, split, batch_size, training=True)`` (decode + R-crop + colour
  aug + gradient targets), warm-up batches excluded;
* `train_step_images_per_second`: ``build_student()`` forward + SI-log loss + Adam update at ``batch_size``, timed
  at each R-crop size (one crop size per batch, so the mean is total images / total time);
* `benchmark_presets`: both per data set preset, on small fixtures in each preset's real format
  (`litedepth_tf.data.fixtures`).
"""

from __future__ import annotations

import json
import os
import time

import keras
import tensorflow as tf

from litedepth_tf.common.files import atomic_write_text
from litedepth_tf.data import datasets, fixtures
from litedepth_tf.data.augment import CROP_SIZES, image_size_for_crop
from litedepth_tf.data.pipeline import make_dataset
from litedepth_tf.data.synthetic import ensure_synthetic
from litedepth_tf.models.student import build_student


def pipeline_images_per_second(root, batch_size=16, steps=60, warmup=5, split="train", seed=0, **kwargs) -> float:
    """Training-pipeline throughput (images/s) over ``steps`` batches after ``warmup`` batches."""
    ds = make_dataset(root, split, batch_size, training=True, seed=seed, **kwargs)
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(steps):
        b = next(it)
        n += int(b["image"].shape[0])
    return n / (time.perf_counter() - t0)


def silog_loss(pred, depth, variance_focus=0.85):
    """SI-log loss (BTS / LiteDepth form) on valid pixels; pred resized bilinearly to the depth resolution."""
    pred = tf.image.resize(pred, tf.shape(depth)[1:3], method="bilinear")
    valid = depth > 0
    g = tf.math.log(tf.maximum(tf.boolean_mask(pred, valid), 1e-3)) - tf.math.log(tf.boolean_mask(depth, valid))
    n = tf.maximum(tf.cast(tf.size(g), tf.float32), 1.0)
    m = tf.reduce_sum(g) / n
    return 10.0 * tf.sqrt(tf.maximum(tf.reduce_sum(g * g) / n - variance_focus * m * m, 1e-12))


def train_step_images_per_second(batch_size=16, steps=5, warmup=1, crop_sizes=CROP_SIZES, image_sizes=None):
    """Student train-step throughput; returns (mean images/s, {crop: images/s}). ``image_sizes``: the network
    input of each crop (default: the 480x640 -> 128x160 scale)."""
    model = build_student()
    opt = keras.optimizers.Adam(1e-4)

    @tf.function  # retraces once per crop size (static shapes)
    def step(image, depth):
        with tf.GradientTape() as tape:
            loss = silog_loss(model(image, training=True)["depth"], depth)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    per_size, total_t, total_n = {}, 0.0, 0
    rng = tf.random.Generator.from_seed(0)
    for j, (ch, cw) in enumerate(crop_sizes):
        ih, iw = image_size_for_crop(ch, cw) if image_sizes is None else image_sizes[j]
        image = rng.uniform([batch_size, ih, iw, 3], 0, 255)
        depth = rng.uniform([batch_size, ch, cw, 1], 0.5, 40.0)
        for _ in range(warmup):
            step(image, depth).numpy()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(image, depth).numpy()
        dt = time.perf_counter() - t0
        per_size[f"{ch}x{cw}"] = batch_size * steps / dt
        total_t += dt
        total_n += batch_size * steps
    return total_n / total_t, per_size


def ensure_data(root, split, gen_train, log=print) -> None:
    """A small synthetic set under `root` (`gen_train` + a quarter as many validation frames) when `split` has no
    frames there."""
    if not os.path.isdir(os.path.join(root, split, "rgb")):
        log(f"no data under {root}/{split}: generating {gen_train} synthetic frames")
        ensure_synthetic(root, gen_train, max(1, gen_train // 4))


def preset_fixture(name, fixture_dir, n):
    """(data_root, split, split_file) of preset ``name``'s fixture with ``n`` frames (written if missing)."""
    root = os.path.join(fixture_dir, f"{name}_{n}")
    stamp = os.path.join(root, ".complete")
    if not os.path.exists(stamp):
        info = fixtures.write_fixture(name, root, n)
        atomic_write_text(stamp, json.dumps(info))
    with open(stamp) as f:
        info = json.load(f)
    return info["data_root"], info["split"], info["split_file"]


def benchmark_presets(names, data_root, split="train", batch_size=16, steps=60, train_steps=5, gen_train=64,
                      fixture_dir="artifacts/fixtures", train_step=True, cache_in_memory=False, log=print) -> dict:
    """{preset: {pipeline / train-step images/s, fixture, sizes}} for the data set presets `names`: mai2022 reads
    `data_root`/`split` (synthetic frames generated there if missing), the others `gen_train`-frame fixtures in
    their real format under `fixture_dir` (written once)."""
    out = {}
    for name in names:
        preset = datasets.get_preset(name)
        if name == datasets.MAI2022.name:
            root, part, split_file = data_root, split, None
            ensure_data(root, part, gen_train, log)
            fixture = f"{root}/{part} (MAI layout)"
        else:
            root, part, split_file = preset_fixture(name, fixture_dir, gen_train)
            fixture = f"{gen_train} synthetic frames in the {name} format ({split_file or os.path.join(root, part)})"
        row = dict(fixture=fixture, frame_size=list(preset.frame_size), net_size=list(preset.net_size),
                   crop_sizes=[list(c) for c in preset.crop_sizes])
        row["pipeline_images_per_second"] = pipeline_images_per_second(
            root, batch_size, steps, split=part, split_file=split_file, dataset=preset,
            cache_in_memory=cache_in_memory)
        log(f"{name:>8} pipeline:   {row['pipeline_images_per_second']:8.1f} images/s (frame "
            f"{preset.frame_size[0]}x{preset.frame_size[1]}, batch {batch_size}; {fixture})")
        if train_step:
            mean, per_size = train_step_images_per_second(batch_size, train_steps, crop_sizes=preset.crop_sizes,
                                                          image_sizes=preset.crop_network_sizes)
            row["train_step_images_per_second"], row["train_step_images_per_second_by_crop"] = mean, per_size
            row["pipeline_over_train_step"] = row["pipeline_images_per_second"] / mean
            log(f"{name:>8} train step: {mean:8.1f} images/s ("
                + ", ".join(f"{k}: {v:.1f}" for k, v in per_size.items()) + ")")
        out[name] = row
    return out


def benchmark_layout(root, split="train", batch_size=16, steps=60, train_steps=5, gen_train=64, train_step=True,
                     cache_in_memory=False, log=print) -> dict:
    """The MAI layout of `root`/`split` (synthetic frames generated there if missing): pipeline images/s, and the
    train step's and their ratio (target >= 3) with `train_step`."""
    ensure_data(root, split, gen_train, log)
    res = dict(data_root=root, split=split, batch_size=batch_size, cpu_count=os.cpu_count(),
               loadavg=list(os.getloadavg()), cache_in_memory=cache_in_memory)
    res["pipeline_images_per_second"] = pipeline_images_per_second(root, batch_size, steps, split=split,
                                                                   cache_in_memory=cache_in_memory)
    log(f"pipeline:   {res['pipeline_images_per_second']:8.1f} images/s (batch {batch_size}, "
        f"{'frames cached in memory' if cache_in_memory else 'PNG decoded every epoch'})")
    if train_step:
        mean, per_size = train_step_images_per_second(batch_size, train_steps)
        res["train_step_images_per_second"] = mean
        res["train_step_images_per_second_by_crop"] = per_size
        res["pipeline_over_train_step"] = res["pipeline_images_per_second"] / mean
        log(f"train step: {mean:8.1f} images/s (batch {batch_size}; "
            + ", ".join(f"{k}: {v:.1f}" for k, v in per_size.items()) + ")")
        ok = "OK" if res["pipeline_over_train_step"] >= 3 else "BELOW TARGET"
        log(f"ratio:      {res['pipeline_over_train_step']:8.2f}x (target >= 3x: {ok})")
    return res
