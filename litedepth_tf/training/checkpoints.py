"""Training checkpoints: a `tf.train.CheckpointManager` that survives a data pipeline it cannot checkpoint."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger("litedepth_tf.training.checkpoints")


class Checkpoints:
    """A CheckpointManager that drops the data iterator once if the pipeline cannot be checkpointed.

    tf.data symbolic checkpointing does not cover every op (e.g. a non-deterministic parallel map raises
    `UnimplementedError` on the first save). The run then keeps checkpointing model, optimizer, sigmas and counters
    (a resumed run restarts its data stream from the seed) instead of dying at its first checkpoint."""

    def __init__(self, trainer, iterator, directory, keep):
        self.trainer, self.iterator, self.directory, self.keep = trainer, iterator, directory, keep
        self.manager = tf.train.CheckpointManager(trainer.checkpoint(iterator), directory, max_to_keep=keep)

    @property
    def latest_checkpoint(self):
        return self.manager.latest_checkpoint

    @property
    def checkpoint(self):
        return self.manager.checkpoint

    def save(self, step):
        try:
            return self.manager.save(checkpoint_number=step)
        except tf.errors.UnimplementedError as err:
            if self.iterator is None:
                raise
            log.warning("the data iterator cannot be checkpointed (%s); checkpoints keep the model, optimizer, "
                        "sigmas and counters, and a resumed run restarts the data stream from the seed (pass "
                        "--deterministic for a checkpointable pipeline)", str(err).splitlines()[0][:200])
            self.iterator = None
            self.manager = tf.train.CheckpointManager(self.trainer.checkpoint(None), self.directory,
                                                      max_to_keep=self.keep)
            return self.manager.save(checkpoint_number=step)
