"""Input-pipeline throughput vs the student's train step, in one run.

    python export/benchmark_pipeline.py [--data_root data/synthetic] [--batch_size 16] [--steps 60]
                                        [--train_steps 5] [--cache_in_memory] [--out artifacts/benchmark_pipeline.json]

* pipeline images/s: ``make_dataset(root, "train", batch_size, training=True)`` (decode + R-crop + colour aug +
  gradient targets), warm-up batches excluded;
* train-step images/s: ``build_student()`` forward + SI-log loss + Adam update at ``batch_size``, timed at each
  R-crop size (one crop size per batch, sizes drawn uniformly, so the mean is total images / total time).
The target is pipeline >= 3x train step. If ``--data_root`` has no data, a small synthetic set is generated there
(``litedepth_tf.data.synthetic.ensure_synthetic``). Numbers depend on the machine and its load: the JSON records
the CPU count and load average.
"""

from __future__ import annotations

import json
import os
import time

import keras
import tensorflow as tf
from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_text
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


def train_step_images_per_second(batch_size=16, steps=5, warmup=1, crop_sizes=CROP_SIZES):
    """Student train-step throughput; returns (mean images/s, {crop: images/s})."""
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
    for ch, cw in crop_sizes:
        ih, iw = image_size_for_crop(ch, cw)
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


def define_flags(fv=None):
    fv = flags.FLAGS if fv is None else fv
    d = dict(flag_values=fv)
    flags.DEFINE_string("data_root", "data/synthetic", "Data root (generated if the split is missing).", **d)
    flags.DEFINE_string("split", "train", "Split to read.", **d)
    flags.DEFINE_integer("batch_size", 16, "Batch size.", **d)
    flags.DEFINE_integer("steps", 60, "Timed pipeline batches (after 5 warm-up batches).", **d)
    flags.DEFINE_integer("train_steps", 5, "Timed train steps per crop size.", **d)
    flags.DEFINE_integer("gen_train", 64, "Frames to generate if --data_root has no such split.", **d)
    flags.DEFINE_bool("train_step", True, "Also time the train step (--notrain_step skips it).", **d)
    flags.DEFINE_bool("cache_in_memory", False, "Decode the frames once into memory, as flags/demo.cfg does.", **d)
    flags.DEFINE_string("out", "artifacts/benchmark_pipeline.json", "Where to write the JSON results.", **d)
    return fv


def main(argv, fv=None):
    a = flags.FLAGS if fv is None else fv
    root = a.data_root
    if not os.path.isdir(os.path.join(root, a.split, "rgb")):
        print(f"no data under {root}/{a.split}: generating {a.gen_train} synthetic frames")
        ensure_synthetic(root, a.gen_train, max(1, a.gen_train // 4))

    res = dict(data_root=root, split=a.split, batch_size=a.batch_size, cpu_count=os.cpu_count(),
               loadavg=list(os.getloadavg()))
    res["cache_in_memory"] = a.cache_in_memory
    res["pipeline_images_per_second"] = pipeline_images_per_second(root, a.batch_size, a.steps, split=a.split,
                                                                   cache_in_memory=a.cache_in_memory)
    print(f"pipeline:   {res['pipeline_images_per_second']:8.1f} images/s (batch {a.batch_size}, "
          f"{'frames cached in memory' if a.cache_in_memory else 'PNG decoded every epoch'})")
    if a.train_step:
        mean, per_size = train_step_images_per_second(a.batch_size, a.train_steps)
        res["train_step_images_per_second"] = mean
        res["train_step_images_per_second_by_crop"] = per_size
        res["pipeline_over_train_step"] = res["pipeline_images_per_second"] / mean
        print(f"train step: {mean:8.1f} images/s (batch {a.batch_size}; "
              + ", ".join(f"{k}: {v:.1f}" for k, v in per_size.items()) + ")")
        ok = "OK" if res["pipeline_over_train_step"] >= 3 else "BELOW TARGET"
        print(f"ratio:      {res['pipeline_over_train_step']:8.2f}x (target >= 3x: {ok})")
    if a.out:
        atomic_write_text(a.out, json.dumps(res, indent=2))
        print(f"wrote {a.out}")
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main, define_flags)
