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

Per data set preset: ``--dataset mai2022,nyu,kitti,diode`` measures each preset's training pipeline (its
decoding: NYU JPEG + PNG16, KITTI PNG + sparse PNG16 with the 352x1216 crop cut in the graph, DIODE converted
PNGs at 768x1024; its R-crop sizes) and train step (at its crops' network sizes). mai2022 reads ``--data_root``;
the others read small fixtures in their real format (`litedepth_tf.data.fixtures`, ``--gen_train`` frames,
written once under ``--fixture_dir``).

    python export/benchmark_pipeline.py --dataset mai2022,nyu,kitti,diode --notrain_step
"""

from __future__ import annotations

import json
import os
import time

import keras
import tensorflow as tf
from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common.files import atomic_write_json, atomic_write_text
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
    flags.DEFINE_list("dataset", None, "Data set presets to measure (mai2022,nyu,kitti,diode); default: the MAI "
                      "layout of --data_root only.", **d)
    flags.DEFINE_string("fixture_dir", "artifacts/fixtures", "Where the other presets' fixtures are written once.",
                        **d)
    return fv


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


def benchmark_presets(a):
    """{preset: {pipeline / train-step images/s, fixture, sizes}} for --dataset."""
    out = {}
    for name in a.dataset:
        preset = datasets.get_preset(name)
        if name == datasets.MAI2022.name:
            root, split, split_file = a.data_root, a.split, None
            if not os.path.isdir(os.path.join(root, split, "rgb")):
                ensure_synthetic(root, a.gen_train, max(1, a.gen_train // 4))
            fixture = f"{root}/{split} (MAI layout)"
        else:
            root, split, split_file = preset_fixture(name, a.fixture_dir, a.gen_train)
            fixture = f"{a.gen_train} synthetic frames in the {name} format ({split_file or os.path.join(root, split)})"
        row = dict(fixture=fixture, frame_size=list(preset.frame_size), net_size=list(preset.net_size),
                   crop_sizes=[list(c) for c in preset.crop_sizes])
        row["pipeline_images_per_second"] = pipeline_images_per_second(
            root, a.batch_size, a.steps, split=split, split_file=split_file, dataset=preset,
            cache_in_memory=a.cache_in_memory)
        print(f"{name:>8} pipeline:   {row['pipeline_images_per_second']:8.1f} images/s (frame "
              f"{preset.frame_size[0]}x{preset.frame_size[1]}, batch {a.batch_size}; {fixture})")
        if a.train_step:
            mean, per_size = train_step_images_per_second(a.batch_size, a.train_steps, crop_sizes=preset.crop_sizes,
                                                          image_sizes=preset.crop_network_sizes)
            row["train_step_images_per_second"], row["train_step_images_per_second_by_crop"] = mean, per_size
            row["pipeline_over_train_step"] = row["pipeline_images_per_second"] / mean
            print(f"{name:>8} train step: {mean:8.1f} images/s (" + ", ".join(f"{k}: {v:.1f}"
                                                                          for k, v in per_size.items()) + ")")
        out[name] = row
    return out


def main(argv, fv=None):
    a = flags.FLAGS if fv is None else fv
    if a.dataset:
        unknown = [n for n in a.dataset if n not in datasets.PRESETS or n == datasets.FOLDER.name]
        if unknown:
            raise cli.InputError(f"--dataset: {', '.join(unknown)} (measurable presets: mai2022, nyu, kitti, diode)")
        res = dict(batch_size=a.batch_size, steps=a.steps, cpu_count=os.cpu_count(), loadavg=list(os.getloadavg()),
                   cache_in_memory=a.cache_in_memory, presets=benchmark_presets(a))
        if a.out:
            atomic_write_json(a.out, res)
            print(f"wrote {a.out}")
        return cli.EXIT_OK
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
        atomic_write_json(a.out, res)
        print(f"wrote {a.out}")
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main, define_flags)
