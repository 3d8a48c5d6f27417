"""Where a training step goes: images/s of the network alone, of the step with its losses, of the input pipeline
and of the real training loop, measured in one run so that their ratios mean something on a machine whose speed
drifts (export/benchmark_train.py prints them and writes a JSON).

* ``network``: the student's forward + backward + Adam update with a dummy loss (the mean of its depth output);
* ``step_stride{s}``: ``Trainer.train_step`` (the four losses at the authors' resolutions against ground truth on
  every ``s``-th pixel of the crop, ``s = 1`` being the authors' recipe; dynamic re-weighting, finite check,
  clipping, the update) on the same batches;
* ``pipeline_stride{s}``: ``make_dataset`` alone at the demo's settings (frames cached in memory, R-crops,
  augmentation, loss targets at ``depth_stride=s``);
* ``loop_stride{s}``: ``Trainer.fit`` (progress bar, TensorBoard scalars every ``log_every`` steps, images and
  checkpoints at their demo intervals, the final checkpoint and ``last.weights.h5``) fed by that pipeline, after a
  first ``fit`` that traces the step (once, for the iterator's element spec). Each loop runs in a fresh child
  process, as ``train`` does: in the benchmark's own process, with the other strides' cached datasets (~0.6 GB each)
  and the earlier models alive, the stride-1 loop measured 0.20x the network against 0.35x in a process of its
  own (2-core CPU), a state no training run is in.

The step rates are timed on one fixed batch per R-crop size (taken from the pipeline), the same number of steps
at each size, so they are the rate of a uniform crop mix as the loop draws it.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time

import keras
import tensorflow as tf

from litedepth_tf.data.augment import CROP_SIZES
from litedepth_tf.data.pipeline import make_dataset
from litedepth_tf.models.student import build_student
from litedepth_tf.training.losses import LossConfig, compute_losses
from litedepth_tf.training.loop import LoopConfig, Trainer, make_optimizer
from litedepth_tf.training.reweight import DynamicReweight
from litedepth_tf.training.schedules import WarmupPolyDecay

# flags/demo.cfg
DEMO = dict(lr=4e-3, min_lr=1e-4, warmup_steps=100, adam_epsilon=1e-6, clip_norm=35.0, log_every=25,
            image_every=600, eval_every=1200, ckpt_every=600, si_per_image=False, depth_stride=1,
            intrinsics=(518.8579, 519.4696, 320.0, 240.0))


def demo_dataset(root, batch_size=16, depth_stride=DEMO["depth_stride"], seed=0, crop_sizes=CROP_SIZES,
                 split="train"):
    """The training pipeline as `train --flagfile=flags/demo.cfg` builds it (frames cached in memory)."""
    return make_dataset(root, split, batch_size, training=True, seed=seed, deterministic=True,
                        crop_sizes=crop_sizes, intrinsics=DEMO["intrinsics"], cache_in_memory=True,
                        depth_stride=depth_stride)


def one_batch_per_crop(ds, n_crops: int, max_batches: int = 200) -> list:
    """The first batch of each crop size the dataset draws (keyed by the image's height and width)."""
    found = {}
    for i, batch in enumerate(ds):
        found.setdefault(tuple(batch["image"].shape[1:3]), batch)
        if len(found) == n_crops or i >= max_batches:
            break
    return [found[k] for k in sorted(found)]


def make_trainer(total_steps: int, seed: int = 0) -> Trainer:
    """The demo's student, optimizer, losses and weighting (random-init encoder)."""
    keras.utils.set_random_seed(seed)
    model = build_student()
    schedule = WarmupPolyDecay(DEMO["lr"], total_steps, min_lr=DEMO["min_lr"], warmup_steps=DEMO["warmup_steps"])
    optimizer = make_optimizer("adam", schedule, epsilon=DEMO["adam_epsilon"])
    cfg = LossConfig(si_per_image=DEMO["si_per_image"])

    def loss_fn(outputs, batch, s):
        return compute_losses(outputs["depth"], batch, s, cfg)

    return Trainer(model, optimizer, loss_fn, DynamicReweight(), clip_norm=DEMO["clip_norm"], seed=seed)


def _time_steps(step, batches, steps: int, warmup: int = 1) -> float:
    """images/s of `step(batch)` (its result fetched to the host) over `steps` calls on each batch."""
    total_t, total_n = 0.0, 0
    for batch in batches:
        for _ in range(warmup):
            tf.nest.map_structure(lambda t: t.numpy(), step(batch))
        t0 = time.perf_counter()
        for _ in range(steps):
            out = step(batch)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        total_t += time.perf_counter() - t0
        total_n += steps * int(batch["image"].shape[0])
    return total_n / total_t


def network_rate(batches, steps: int) -> float:
    """The student's forward + backward + Adam with a dummy loss."""
    keras.utils.set_random_seed(0)
    model = build_student()
    opt = keras.optimizers.Adam(1e-4)

    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(batch["image"], training=True)["depth"])
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return _time_steps(step, batches, steps)


def step_rate(batches, steps: int) -> float:
    """`Trainer.train_step` with the demo's four losses on `batches`."""
    trainer = make_trainer(10_000)
    return _time_steps(trainer.train_step, batches, steps)


def pipeline_rate(ds, steps: int, warmup: int = 5) -> float:
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        n += int(next(it)["image"].shape[0])
    return n / (time.perf_counter() - t0)


def loop_rate(ds, batch_size: int, steps: int, warmup_steps: int, run_dir=None) -> dict:
    """`Trainer.fit` at the demo's logging / image / checkpoint intervals: a first fit of `warmup_steps` (traces
    the step at every crop size), then the timed fit of `steps` more (wall time, the final checkpoint included)."""
    total = warmup_steps + steps
    trainer = make_trainer(total)
    cfg = LoopConfig(clip_norm=DEMO["clip_norm"], log_every=DEMO["log_every"], image_every=DEMO["image_every"],
                     eval_every=DEMO["eval_every"], ckpt_every=DEMO["ckpt_every"])
    with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
        trainer.fit(ds, warmup_steps, tmp, cfg=cfg, batch_size=batch_size)
        t0 = time.perf_counter()
        summary = trainer.fit(ds, total, tmp, cfg=cfg, batch_size=batch_size)
        wall = time.perf_counter() - t0
    return dict(images_per_s=steps * batch_size / wall, logged_images_per_s=summary["last"].get("images_per_s"),
                skipped_steps=summary["skipped_steps"])


def _fresh_loop(root, batch_size, stride, crop_sizes, steps, warmup) -> dict:
    """`loop_rate` in this (child) process: op determinism as the demo, its own cached pipeline."""
    tf.config.experimental.enable_op_determinism()
    return loop_rate(demo_dataset(root, batch_size, stride, crop_sizes=crop_sizes), batch_size, steps, warmup)


def loop_rate_fresh(root, batch_size, stride, steps, warmup, crop_sizes=CROP_SIZES) -> dict:
    """`loop_rate` of the demo pipeline at `stride`, in a spawned child process (the parent waits)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_fresh_loop, (os.fspath(root), batch_size, stride, tuple(crop_sizes), steps, warmup))


def run_benchmark(root, batch_size=16, strides=(1, 4), step_steps=8, pipeline_steps=60, loop_steps=150,
                  loop_warmup=30, loop_strides=(4, 1), crop_sizes=CROP_SIZES, log=print) -> dict:
    """Every rate, in the order network, steps, pipelines, loops, network again; ratios to the mean of the two
    network rates."""
    tf.config.experimental.enable_op_determinism()  # as the demo (--deterministic)
    res = dict(batch_size=batch_size, crop_sizes=[f"{h}x{w}" for h, w in crop_sizes], cpu_count=os.cpu_count(),
               loadavg_start=list(os.getloadavg()), rates={})
    rates = res["rates"]
    datasets = {s: demo_dataset(root, batch_size, s, crop_sizes=crop_sizes) for s in sorted(set(strides) |
                                                                                          set(loop_strides))}
    batches = {s: one_batch_per_crop(ds, len(crop_sizes)) for s, ds in datasets.items()}
    t = time.perf_counter()
    rates["network"] = network_rate(batches[min(batches)], step_steps)
    log(f"network alone            {rates['network']:8.1f} images/s  ({time.perf_counter() - t:.0f} s)")
    for s in strides:
        t = time.perf_counter()
        rates[f"step_stride{s}"] = step_rate(batches[s], step_steps)
        log(f"step, losses stride {s}    {rates[f'step_stride{s}']:8.1f} images/s  ({time.perf_counter() - t:.0f} s)")
    for s in sorted(datasets, reverse=True):  # the demo's stride first
        t = time.perf_counter()
        rates[f"pipeline_stride{s}"] = pipeline_rate(datasets[s], pipeline_steps)
        log(f"pipeline alone, stride {s} {rates[f'pipeline_stride{s}']:8.1f} images/s  "
            f"({time.perf_counter() - t:.0f} s)")
    for s in loop_strides:
        t = time.perf_counter()
        out = loop_rate_fresh(root, batch_size, s, loop_steps, loop_warmup, crop_sizes)
        rates[f"loop_stride{s}"] = out["images_per_s"]
        res[f"loop_stride{s}_detail"] = out
        log(f"loop (Trainer.fit) st. {s} {out['images_per_s']:8.1f} images/s  ({time.perf_counter() - t:.0f} s)")
    # the machine's speed drifts within a run: the network is timed again at the end, ratios use the mean
    t = time.perf_counter()
    rates["network_end"] = network_rate(batches[min(batches)], step_steps)
    log(f"network alone, again     {rates['network_end']:8.1f} images/s  ({time.perf_counter() - t:.0f} s)")
    reference = 0.5 * (rates["network"] + rates["network_end"])
    res["network_mean"] = reference
    res["ratio_to_network"] = {k: v / reference for k, v in rates.items()}
    res["loadavg_end"] = list(os.getloadavg())
    return res


def format_table(res: dict) -> str:
    lines = ["| what | images/s | x network |", "| --- | --- | --- |"]
    for k, v in res["rates"].items():
        lines.append(f"| {k} | {v:.1f} | {res['ratio_to_network'][k]:.2f}x |")
    return "\n".join(lines)
