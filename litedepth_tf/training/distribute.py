"""tf.distribute for the trainer: the strategy by name, which worker is the chief, synchronized BatchNorm.

Keras 3 BatchNormalization keeps its moving statistics per replica (no cross-replica aggregation), so workers
would drift apart; `sync_batchnorm` switches every BatchNormalization layer to `synchronized=True`: batch
statistics are all-reduced over the global batch and every replica applies the same moving-average update."""

from __future__ import annotations

import os

import keras
import tensorflow as tf


def strategy_from_name(name: str) -> tf.distribute.Strategy:
    """'default' | 'mirrored' | 'multiworker' (reads TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy=multiworker needs the TF_CONFIG environment variable (cluster + task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy must be default, mirrored or multiworker, got {name!r}")


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def worker_id(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None and resolver.task_id is not None else 0


def replica_values_fn(strategy):
    """``fn(value: int) -> [int]``: every replica's `value` (index = replica id in sync, all workers), by one SUM
    all-reduce of a one-hot vector; each replica of a worker reports that worker's value. Traced once: under
    MultiWorkerMirroredStrategy every worker must call it at the same point (it is a collective)."""
    n = strategy.num_replicas_in_sync

    def one_hot(value):
        ctx = tf.distribute.get_replica_context()
        return tf.one_hot(ctx.replica_id_in_sync_group, n, dtype=tf.int64) * value

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
    def gather(value):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(one_hot, args=(value,)), axis=None)

    return lambda value: [int(v) for v in gather(tf.constant(int(value), tf.int64)).numpy()]


def sync_batchnorm(model) -> int:
    """Sets ``synchronized=True`` on every BatchNormalization layer (nested models included); returns the count."""
    n = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            n += 1
    return n
