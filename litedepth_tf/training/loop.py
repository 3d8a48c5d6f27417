"""A small custom training loop (keras.io "customizing fit" style): one `tf.function` step, one Python loop.

    trainer = Trainer(model, optimizer, loss_fn, weighting, strategy=strategy, extra_loss_fn=None)
    trainer.fit(train_ds, total_steps, run_dir, val_ds=val_ds, cfg=LoopConfig(...))

Pieces, each replaceable:
* `loss_fn(outputs, batch, seed) -> {"si": ..., "grad": ..., "vnl": ..., "robust": ..., ...}` scalars (the losses
  module); keys in `weighting.terms` are combined by `weighting` (a Keras layer: dynamic re-weighting with
  learnable sigmas, trained with the model, or fixed weights), any other float key is only logged.
* `extra_loss_fn(outputs, batch) -> {name: scalar}` (optional; distillation): added to the weighted sum as is.

The step (`_replica_step`, run on every replica):
  forward (training=True) -> loss terms -> total -> gradient of total / replicas -> all-reduce (mean gradient,
  the same on every replica) -> global norm -> finite check -> clip to `clip_norm` -> apply, or skip.
A step whose loss or any gradient is NaN/inf is **not applied**: the optimizer is not called (weights, slots and
`optimizer.iterations` untouched) and BatchNorm moving statistics updated by the forward pass are restored
from a snapshot, so the model after a bad step equals the model before it. `skipped` counts such steps and
`bad_in_row` the current run of them; `fit` aborts with `NonFiniteError` (naming the step and the batch's files)
after `max_bad_steps` in a row, after writing a checkpoint of the last good state.

Distribution: the conditional apply follows Keras' LossScaleOptimizer: under strategies that need `merge_call`
(Mirrored/MultiWorkerMirrored on CPU), a `tf.cond` around `optimizer.apply` must run in cross-replica context.
The gradient is all-reduced here (so clipping and the finite check see the global gradient, as with PyTorch DDP),
and Keras' optimizer sums it across replicas once more, so it gets `grad / replicas` (identical on every replica).

BatchNorm under more than one replica: Keras 3 BatchNormalization keeps its moving statistics per replica (no
cross-replica aggregation), so workers would drift apart. The trainer switches every BatchNormalization layer of
the model to `synchronized=True` when `num_replicas_in_sync > 1`: batch statistics are all-reduced over the global
batch (what one device with the whole batch would compute), every replica applies the same moving-average update,
and all workers hold identical weights and statistics (tests/test_multiworker.py compares them bit for bit).

Precise BatchNorm (`precise_bn_batches=N`, Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): before each
validation and at the last step, the moving statistics are replaced by the average of the batch statistics of N
training batches (training-mode forward passes, no weight update, a separate iterator so the training stream is
untouched). An exponential moving average lags behind weights that still move fast; measured on the demo after
300 steps from scratch, validation si-RMSE 0.671 with the moving averages, 0.482 after recalibrating on 20 batches.

Checkpoints (`tf.train.CheckpointManager` under `run_dir/ckpt`): model, optimizer, weighting (sigmas), step and
skip counters, and the training data iterator when `checkpoint_iterator=True` (tf.data symbolic checkpointing:
positions, not buffers; only with the default strategy: tf.distribute's DistributedIterator is not trackable, so
a resumed mirrored/multiworker run restarts its data stream from the seed). Best-on-validation weights (lowest
si-RMSE) go to `best.weights.h5`, the latest to `last.weights.h5`, both written atomically.

Faults (docs/reliability.md): `--resume` uses the newest checkpoint that reads back completely
(`training.checkpoints`); a write that fails (full disk) ends `fit` with `WriteError` naming the file, the error
and the last complete checkpoint; SIGTERM / SIGINT stop the run after the current step with a checkpoint and
`Preempted` (`training.preemption`; all workers stop after the same step).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from litedepth_tf.common import files as fsutil
from litedepth_tf.common.progress import progress_bar
from litedepth_tf.data.bad_samples import BadSampleCounter
from litedepth_tf.evaluation.evaluator import evaluate_predict_fn
from litedepth_tf.models.student import build_deploy_model
from litedepth_tf.training import tensorboard as tb
from litedepth_tf.training.checkpoints import Checkpoints, DamagedCheckpointError, checkpoint_step
from litedepth_tf.training.distribute import is_chief, replica_values_fn, sync_batchnorm, worker_id
from litedepth_tf.training.preemption import Preempted, StopSignals

log = logging.getLogger("litedepth_tf.training.loop")


class NonFiniteError(RuntimeError):
    """Raised after `max_bad_steps` non-finite steps in a row."""


@dataclasses.dataclass
class LoopConfig:
    clip_norm: float = 35.0
    max_bad_steps: int = 5  # abort after this many non-finite steps in a row (0 = never)
    log_every: int = 50  # TensorBoard scalars + progress bar
    image_every: int = 500  # TensorBoard images (0 = never)
    eval_every: int = 1000  # validation (0 = only at the end)
    ckpt_every: int = 500  # checkpoint (0 = only at the end)
    keep_checkpoints: int = 3
    checkpoint_iterator: bool = True
    seed: int = 0  # loss sampling (VNL triplets) seed, combined with the step
    val_max_images: int = 0  # 0 = the whole validation split
    precise_bn_batches: int = 0  # recalibrate BatchNorm statistics on this many batches before validation / at the end


class Trainer:
    def __init__(self, model, optimizer, loss_fn, weighting, strategy=None, extra_loss_fn=None,
                 clip_norm: float = 35.0, seed: int = 0, frame_size=None):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.frame_size = tuple(frame_size) if frame_size is not None else None  # validation frames (default 480x640)
        self.model, self.optimizer, self.loss_fn, self.weighting = model, optimizer, loss_fn, weighting
        self.extra_loss_fn, self.clip_norm, self.seed = extra_loss_fn, float(clip_norm), int(seed)
        with self.strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
            self.bad_in_row = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_in_row")
            self.optimizer.build(self.trainable_variables)
        self._bn_fn = None
        if self.strategy.num_replicas_in_sync > 1:
            n = sync_batchnorm(self.model)
            log.info("%d replicas: %d BatchNormalization layers use synchronized (global-batch) statistics",
                     self.strategy.num_replicas_in_sync, n)
        self._step_fn = None
        self._active_step_fn = None  # set by `fit` for its run
        self._fit_step_fn, self._fit_step_key = None, None  # `_fit_step`'s function and the spec it was traced for

    @property
    def trainable_variables(self):
        # + the distillation hook's own variables (channel adapters of the L2 / channel-wise distillers), if any
        return (list(self.model.trainable_variables) + list(self.weighting.trainable_variables)
                + list(getattr(self.extra_loss_fn, "trainable_variables", [])))

    # ---- the step -------------------------------------------------------------------------------------------
    def _replica_step(self, batch):
        ctx = tf.distribute.get_replica_context()
        n = ctx.num_replicas_in_sync
        seed = tf.stack([tf.constant(self.seed, tf.int64), self.step * n + tf.cast(ctx.replica_id_in_sync_group,
                                                                                    tf.int64)])
        snapshot = [tf.identity(v) for v in self.model.non_trainable_variables]
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.model(batch["image"], training=True)
            terms = dict(self.loss_fn(outputs, batch, seed))
            if self.extra_loss_fn is not None:
                terms.update(self.extra_loss_fn(outputs, batch))
            loss = self.weighting({k: terms[k] for k in self.weighting.terms})
            extra = [v for k, v in terms.items() if k not in self.weighting.terms and k != "n_valid"]
            for term in [*extra, *self.model.losses]:
                loss = loss + term
            scaled = loss / n
        grads = tape.gradient(scaled, variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        norm = tf.linalg.global_norm(grads)
        ok = tf.math.is_finite(ctx.all_reduce(tf.distribute.ReduceOp.SUM, loss)) & tf.math.is_finite(norm)
        grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=norm)
        ctx.merge_call(self._apply_or_restore, args=([g / n for g in grads], ok, snapshot))
        logs = {k: tf.cast(v, tf.float32) for k, v in terms.items()}
        logs.update(loss=loss, grad_norm=norm, ok=tf.cast(ok, tf.float32))
        return logs

    def _apply_or_restore(self, dist, grads, ok, snapshot):
        """Cross-replica: apply the update on every replica, or put back the BatchNorm statistics."""
        ok0 = dist.experimental_local_results(ok)[0]  # all-reduced, hence the same on every replica

        def apply():
            dist.extended.call_for_each_replica(lambda g: self.optimizer.apply(g, self.trainable_variables),
                                                args=(grads,))
            return tf.constant(True)

        def restore():
            for var, value in zip(self.model.non_trainable_variables, snapshot):
                tf_var = var.value if isinstance(var, keras.Variable) else var  # the tf.Variable (distributed)
                dist.extended.update(tf_var, lambda v, x: v.assign(x), args=(value,), group=False)
            return tf.constant(False)

        return tf.cond(ok0, apply, restore)

    def _train_step(self, batch):
        logs = self.strategy.run(self._replica_step, args=(batch,))
        logs = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}
        bad = tf.cast(logs["ok"] < 1.0, tf.int64)
        self.skipped.assign_add(bad)
        self.bad_in_row.assign(bad * (self.bad_in_row + 1))
        self.step.assign_add(1)
        return logs

    def train_step(self, batch):
        """One step on a batch (a dict, or a distributed batch under a strategy); returns the logs dict. Inside
        `fit`, the step traced for the training iterator's element spec (`_fit_step`)."""
        fn = self._active_step_fn
        if fn is None:
            if self._step_fn is None:
                self._step_fn = tf.function(self._train_step, reduce_retracing=True)
            fn = self._step_fn
        return fn(batch)

    def _fit_step(self, element_spec):
        """The step `fit` runs: traced ONCE for the iterator's element spec (R-crop batches have ``None`` spatial
        dims), instead of once for the first crop size and again, relaxed, for the second (``reduce_retracing``):
        one trace of the whole step less per run (~9 s on a 2-core CPU)."""
        if element_spec is None:
            return None
        key = repr(element_spec)
        if self._fit_step_key != key:
            self._fit_step_key = key
            self._fit_step_fn = tf.function(self._train_step, input_signature=[element_spec])
        return self._fit_step_fn

    # ---- state ----------------------------------------------------------------------------------------------
    def checkpoint(self, iterator=None) -> tf.train.Checkpoint:
        items = dict(model=self.model, optimizer=self.optimizer, weighting=self.weighting, step=self.step,
                     skipped=self.skipped, bad_in_row=self.bad_in_row)
        if iterator is not None:
            items["data_iterator"] = iterator
        if getattr(self.extra_loss_fn, "adapters", None) is not None:
            items["distill_adapters"] = self.extra_loss_fn.adapters
        return tf.train.Checkpoint(**items)

    def sigmas(self) -> dict:
        return {v.name.split("/")[-1].split(":")[0]: float(np.asarray(v)) for v in self.weighting.trainable_variables}

    def learning_rate(self) -> float:
        lr = self.optimizer.learning_rate
        return float(np.asarray(lr))

    # ---- validation -----------------------------------------------------------------------------------------
    def predict_fn(self):
        """The deploy view around the live weights: [1, H, W, 3] -> [1, H, W, 1] metres at the validation frame
        size (480x640 unless the trainer was given another ``frame_size``)."""

        if getattr(self, "_deploy", None) is None:
            kw = {} if self.frame_size is None else dict(frame_size=self.frame_size)
            self._deploy = build_deploy_model(self.model, merge_normalization=False, name="deploy_eval", **kw)
            self._deploy_fn = tf.function(lambda x: self._deploy(x, training=False), reduce_retracing=True)
        return self._deploy_fn

    def recalibrate_batchnorm(self, batches) -> int:
        """Precise BN: every BatchNorm's moving mean / variance := the mean of its batch statistics over `batches`
        (training-mode forward passes, weights untouched). Returns the number of batches used."""
        bns = [layer for layer in self.model._flatten_layers(include_self=False, recursive=True)
               if isinstance(layer, keras.layers.BatchNormalization)]
        if not bns:
            return 0
        momenta = [layer.momentum for layer in bns]
        stats = [v for layer in bns for v in (layer.moving_mean, layer.moving_variance)]
        if self._bn_fn is None:
            def forward(batch):
                self.strategy.run(lambda b: self.model(b["image"], training=True)["depth"], args=(batch,))
            self._bn_fn = tf.function(forward, reduce_retracing=True)
        sums, n = None, 0
        try:
            for layer in bns:
                layer.momentum = 0.0  # moving statistics := this batch's statistics (traced into _bn_fn only)
            for batch in batches:
                self._bn_fn(batch)
                values = [np.asarray(v.numpy(), np.float64) for v in stats]
                sums = values if sums is None else [a + b for a, b in zip(sums, values)]
                n += 1
        finally:
            for layer, m in zip(bns, momenta):
                layer.momentum = m
        if n:
            for var, total in zip(stats, sums):
                var.assign((total / n).astype(np.float32))
        return n

    def validate(self, val_ds, max_images: int = 0):
        """MAI metrics of the deploy view on `val_ds` (full-resolution eval batches), plus the first sample."""
        return evaluate_predict_fn(self.predict_fn(), val_ds, max_images=max_images)

    # ---- the loop -------------------------------------------------------------------------------------------
    def _iterator(self, train_data, distributed: bool, checkpointable: bool):
        """`train_data`: a tf.data.Dataset of batches (default strategy) or `fn(tf.distribute.InputContext)`
        returning the per-replica-batched dataset of one input pipeline (any strategy)."""
        options = tf.data.Options()
        options.experimental_symbolic_checkpoint = bool(checkpointable)  # positions, not prefetch buffers
        if distributed:
            if not callable(train_data):
                raise ValueError("under a distribution strategy pass train_data as fn(InputContext) -> dataset")
            return iter(self.strategy.distribute_datasets_from_function(
                lambda ctx: train_data(ctx).with_options(options),
                tf.distribute.InputOptions(experimental_fetch_to_device=False)))  # strings (rgb_path) stay on host
        ds = train_data(tf.distribute.InputContext()) if callable(train_data) else train_data
        return iter(ds.with_options(options))

    def fit(self, train_data, total_steps: int, run_dir, val_ds=None, cfg: LoopConfig | None = None,
            batch_size: int | None = None, resume: bool = False, bad_samples: BadSampleCounter | None = None):
        """Trains until `step == total_steps`; returns a summary dict (also written to `run_dir/summary.json`).
        `train_data`: see `_iterator`; `batch_size`: the global batch size (for images/s); `bad_samples`: the
        counter the run's datasets report dropped samples to (logged as `data/skipped_samples`)."""
        cfg = cfg or LoopConfig()
        bad_samples = BadSampleCounter() if bad_samples is None else bad_samples
        strategy, chief = self.strategy, is_chief(self.strategy)
        run_dir = os.fspath(run_dir)
        # MultiWorkerMirrored: every worker saves (the save is collective), only the chief into run_dir/ckpt
        ckpt_dir = os.path.join(run_dir, "ckpt") if chief else os.path.join(run_dir, f".worker{worker_id(strategy)}")
        os.makedirs(ckpt_dir, exist_ok=True)
        distributed = strategy.num_replicas_in_sync > 1 or isinstance(
            strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))

        iterator = self._iterator(train_data, distributed, cfg.checkpoint_iterator)
        # tf.data iterators are checkpointable; tf.distribute's DistributedIterator (distribute_datasets_from_function)
        # is not: under mirrored/multiworker a resumed run restarts its data stream from the seed.
        ckpt_iter = iterator if cfg.checkpoint_iterator and isinstance(iterator, tf.__internal__.tracking.Trackable) \
            else None
        manager = Checkpoints(self, ckpt_iter, ckpt_dir, cfg.keep_checkpoints)
        if resume:
            self._restore(manager, ckpt_iter)

        writer = tb.create_writer(run_dir) if chief else tf.summary.create_noop_writer()
        best_path = os.path.join(run_dir, "best_metrics.json")
        best = _read_json(best_path).get("si_rmse", math.inf) if resume else math.inf
        step = start_step = int(self.step.numpy())
        bar = progress_bar(total=total_steps, initial=step, desc="train", unit="step", disable=None if chief else True)
        t0, images, last_logs, history = time.perf_counter(), 0, {}, []
        batch, bn_iter = None, None
        stop = StopSignals(strategy).install()  # SIGTERM / SIGINT: stop after the current step
        self._active_step_fn = self._fit_step(getattr(iterator, "element_spec", None))
        try:
            while step < total_steps:
                batch = next(iterator)
                logs = self.train_step(batch)
                step += 1
                images += batch_size or 0
                if int(self.bad_in_row.numpy()) >= cfg.max_bad_steps > 0:
                    self._abort(step, batch, manager, logs, cfg.max_bad_steps)
                want_log = step % cfg.log_every == 0 or step == total_steps
                if want_log:
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    last_logs = {k: float(v.numpy()) for k, v in logs.items()}
                    scalars = {f"loss/{k}": v for k, v in last_logs.items() if k not in ("ok", "grad_norm")}
                    scalars.update({f"sigma/{k}": v for k, v in self.sigmas().items()})
                    scalars["data/skipped_samples"] = float(bad_samples.count)
                    scalars.update({"lr": self.learning_rate(), "grad_norm": last_logs["grad_norm"],
                                    "images_per_s": images / elapsed, "skipped_steps": float(self.skipped.numpy())})
                    tb.write_scalars(writer, step, scalars)
                    bar.set_postfix(loss=f"{last_logs['loss']:.4f}", img_s=f"{images / elapsed:.0f}",
                                    skipped=int(self.skipped.numpy()), bad_files=bad_samples.count)
                    last_logs["images_per_s"] = images / elapsed
                    t0, images = time.perf_counter(), 0
                bar.update(1)
                if chief and cfg.image_every and step % cfg.image_every == 0:
                    self._write_train_images(writer, step, batch)
                validating = val_ds is not None and (
                    (cfg.eval_every and step % cfg.eval_every == 0) or step == total_steps)
                if cfg.precise_bn_batches and (validating or step == total_steps):
                    if bn_iter is None:  # its own stream: the training iterator (and its checkpoint) is untouched
                        bn_iter = self._iterator(train_data, distributed, False)
                    self.recalibrate_batchnorm(itertools.islice(bn_iter, cfg.precise_bn_batches))
                if validating:
                    metrics, sample = self.validate(val_ds, cfg.val_max_images)
                    history.append(dict(step=step, **metrics))
                    if chief:
                        tb.write_scalars(writer, step, {f"val/{k}": v for k, v in metrics.items()})
                        if sample is not None:
                            tb.write_depth_images(writer, step, "val", *sample)
                        if metrics["si_rmse"] < best:
                            best = metrics["si_rmse"]
                            fsutil.atomic_save_weights(self.model, os.path.join(run_dir, "best.weights.h5"))
                            fsutil.atomic_write_json(best_path, dict(step=step, **metrics))
                    bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
                    t0, images = time.perf_counter(), 0  # validation time does not count in images/s
                if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == total_steps:
                    manager.save(step)
                    tb.flush(writer)  # the scalars up to a checkpoint survive a kill -9 after it
                    if chief:
                        fsutil.atomic_save_weights(self.model, os.path.join(run_dir, "last.weights.h5"))
                if step < total_steps and stop.requested():
                    self._preempt(stop, step, total_steps, manager, writer, run_dir, chief)
            if chief and resume and step == start_step > 0:
                # resumed with nothing left to train (e.g. killed after the final checkpoint, before or while
                # writing last.weights.h5): make last.weights.h5 the final state
                fsutil.atomic_save_weights(self.model, os.path.join(run_dir, "last.weights.h5"))
        except fsutil.WriteError as err:  # e.g. a full disk: say what is intact
            raise _intact(err, manager) from None
        finally:
            self._active_step_fn = None
            stop.restore()
            bar.close()
            tb.flush(writer, quiet=True)
        summary = dict(step=step, skipped_steps=int(self.skipped.numpy()), last=last_logs,
                       best_si_rmse=None if math.isinf(best) else best, validation=history)
        if chief:
            try:
                fsutil.atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
            except fsutil.WriteError as err:
                raise _intact(err, manager) from None
        return summary

    def _restore(self, manager, iterator):
        path = manager.checkpoint_to_resume()  # the newest intact one (a warning names any damaged newer one)
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            steps = replica_values_fn(self.strategy)(-1 if path is None else checkpoint_step(path))
            if len(set(steps)) > 1:  # each worker restores its own files: they must hold the same step
                raise DamagedCheckpointError(f"--resume: the workers' newest intact checkpoints differ (step per "
                                             f"replica, -1 = none: {steps}); this worker's folder: {manager.directory}")
        if path is None:
            log.info("--resume: no checkpoint in %s, starting from scratch", manager.directory)
            return
        try:
            manager.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as err:
            if iterator is None:
                raise
            # e.g. a checkpoint written with other data flags: keep the weights, start a fresh data iterator
            log.warning("could not restore the data iterator from %s (%s); restoring the rest", path, err)
            self.checkpoint().restore(path).expect_partial().assert_existing_objects_matched()
        log.info("resumed from %s at step %d", path, int(self.step.numpy()))

    def _preempt(self, stop, step, total_steps, manager, writer, run_dir, chief):
        """The stop after a signal: a checkpoint of this step (unless it was just saved), TensorBoard flushed,
        last.weights.h5; then `Preempted`."""
        path = manager.latest_checkpoint if manager.latest_step == step else manager.save(step)
        tb.flush(writer)
        if chief:
            fsutil.atomic_save_weights(self.model, os.path.join(run_dir, "last.weights.h5"))
        raise Preempted(stop.signum, step, path, total_steps, stop.source)

    def _abort(self, step, batch, manager, logs, k):
        paths = []
        if isinstance(batch, dict) and "rgb_path" in batch:
            for t in self.strategy.experimental_local_results(batch["rgb_path"]):
                paths += [p.decode() for p in np.asarray(t).reshape(-1)]
        # the state is the last good one: bad steps changed nothing (and the step counter is only a counter)
        path = manager.save(step)
        vals = {k2: float(v.numpy()) for k2, v in logs.items() if k2 != "ok"}
        raise NonFiniteError(
            f"{k} non-finite training steps in a row (the last at step {step}); no update was applied for them. "
            f"Loss terms of the last: {vals}. Its batch came from: {paths or 'unknown files'}. "
            f"Checkpoint of the last good state: {path}")

    def _write_train_images(self, writer, step, batch):
        local = {k: self.strategy.experimental_local_results(batch[k])[0] for k in ("image", "depth")}
        pred = self.model(local["image"][:1], training=False)["depth"]
        tb.write_depth_images(writer, step, "train", local["image"][0].numpy(), local["depth"][0].numpy(),
                              pred[0].numpy())


def _intact(err, manager) -> fsutil.WriteError:
    """The WriteError of a failed write, extended by what a --resume would start from."""
    return fsutil.WriteError(f"{err}; {manager.last_complete()}", err.errno, err.filename)


def _read_json(path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def make_optimizer(name: str, learning_rate, epsilon: float = 1e-3, weight_decay: float = 0.01,
                   no_decay_names=()):
    """'adam' (student: eps 1e-3) or 'adamw' (teacher: weight decay, no decay on `no_decay_names`)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, epsilon=epsilon)
    if name == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=learning_rate, epsilon=epsilon, weight_decay=weight_decay)
        if no_decay_names:
            opt.exclude_from_weight_decay(var_names=list(no_decay_names))
        return opt
    raise ValueError(f"--optimizer must be adam or adamw, got {name!r}")
