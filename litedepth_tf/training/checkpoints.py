"""Training checkpoints: a `tf.train.CheckpointManager` that survives a data pipeline it cannot checkpoint, damaged
checkpoint files and writes that fail.

* Resume (`Checkpoints.checkpoint_to_resume`): every candidate is read back completely before it is used (the
  index parsed, every tensor read, which checks TensorFlow's per-tensor CRC32C), newest first: the checkpoints the
  `checkpoint` state file lists, then, only if none of those is intact, any other `ckpt-N.index` in the folder (a
  state file that is missing, damaged or lists only deleted checkpoints). Damaged or missing newer checkpoints are
  named in one warning and dropped from the state file (their files stay where they are, until a save of the same
  step replaces them); when none is intact, `DamagedCheckpointError` (a `cli.InputError`: one line naming the
  folder, exit 2).
* Save (`Checkpoints.save`): a write that fails (full disk, I/O error) removes what it left of this checkpoint
  (TensorFlow's `ckpt-N_temp/` shard folder and any unlisted `ckpt-N.*` file) and raises `WriteError` naming the
  checkpoint and the error; the checkpoints written before are untouched and still listed
  (`last_complete()` says which one a `--resume` would start from).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import time

import tensorflow as tf

from litedepth_tf.common import files as fsutil
from litedepth_tf.common.cli import InputError

log = logging.getLogger("litedepth_tf.training.checkpoints")

_NUMBER = re.compile(r"-(\d+)$")


class DamagedCheckpointError(InputError):
    """`--resume` found checkpoints, none of them intact."""


def checkpoint_step(prefix) -> int | None:
    m = _NUMBER.search(os.fspath(prefix))
    return int(m.group(1)) if m else None


def _newest_first(prefixes) -> list:
    return sorted(prefixes, key=lambda p: -1 if checkpoint_step(p) is None else checkpoint_step(p), reverse=True)


def check_checkpoint(prefix) -> str | None:
    """None when the checkpoint `prefix` reads back completely, else one line saying which file is damaged and
    how. Reads every tensor (one at a time, so memory stays at the largest tensor), DT_VARIANT ones (the data
    iterator's state) through RestoreV2, since NumPy cannot hold them."""
    prefix = os.fspath(prefix)
    index = prefix + ".index"
    data = sorted(glob.glob(glob.escape(prefix) + ".data-*"))
    if not os.path.exists(index):
        return f"{os.path.basename(index)} is missing" + ("" if data else " (and no data file is left)")
    try:
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as err:  # noqa: BLE001 - any failure to parse the index means it is damaged
        return f"{os.path.basename(index)}: {fsutil.describe_error(err)}"
    if not data:
        return f"no {os.path.basename(prefix)}.data-* file"
    shards = {int(m.group(1)) for m in (re.search(r"-of-(\d+)$", d) for d in data) if m}
    missing = [f"{os.path.basename(prefix)}.data-{i:05d}-of-{n:05d}" for n in shards for i in range(n)
               if not os.path.exists(f"{prefix}.data-{i:05d}-of-{n:05d}")]
    if missing:
        return f"{', '.join(missing)} missing"
    names = ", ".join(os.path.basename(d) for d in data)
    try:
        for name, dtype in sorted(dtypes.items()):
            if dtype == tf.variant:
                tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[name], shape_and_slices=[""], dtypes=[dtype])
            else:
                reader.get_tensor(name)
    except Exception as err:  # noqa: BLE001 - e.g. IndexError "Read less bytes than requested", DataLossError (CRC)
        return f"{names}: {fsutil.describe_error(err)} (reading {name})"
    return None


class Checkpoints:
    """A CheckpointManager that drops the data iterator once if the pipeline cannot be checkpointed, checks a
    checkpoint before resuming from it, and cleans up after a failed save (see the module docstring).

    tf.data symbolic checkpointing does not cover every op (e.g. a non-deterministic parallel map raises
    `UnimplementedError` on the first save). The run then keeps checkpointing model, optimizer, sigmas and counters
    (a resumed run restarts its data stream from the seed) instead of dying at its first checkpoint."""

    def __init__(self, trainer, iterator, directory, keep):
        self.trainer, self.iterator, self.directory, self.keep = trainer, iterator, directory, keep
        self.manager = self._manager()

    def _manager(self):
        try:
            return tf.train.CheckpointManager(self.trainer.checkpoint(self.iterator), self.directory,
                                              max_to_keep=self.keep)
        except (tf.errors.OpError, ValueError) as err:  # e.g. a state file that is not UTF-8
            state = os.path.join(self.directory, "checkpoint")
            if not os.path.isfile(state):
                raise
            damaged = state + ".damaged"
            os.replace(state, damaged)
            log.warning("the checkpoint state file %s is damaged (%s); moved to %s, checkpoints are found by "
                        "their file names", state, fsutil.describe_error(err), damaged)
            return tf.train.CheckpointManager(self.trainer.checkpoint(self.iterator), self.directory,
                                              max_to_keep=self.keep)

    @property
    def latest_checkpoint(self):
        return self.manager.latest_checkpoint

    @property
    def latest_step(self) -> int | None:
        path = self.manager.latest_checkpoint
        return checkpoint_step(path) if path else None

    @property
    def checkpoint(self):
        return self.manager.checkpoint

    # ---- resume -------------------------------------------------------------------------------------------------
    def candidates(self) -> tuple[list[str], list[str]]:
        """(listed, unlisted) checkpoint prefixes, newest first: those in the state file, and the other
        `ckpt-N.index` files of the folder."""
        listed = _newest_first(self.manager.checkpoints)
        names = {os.path.abspath(p) for p in listed}
        on_disk = [p[:-len(".index")] for p in glob.glob(os.path.join(glob.escape(self.directory), "ckpt-*.index"))]
        unlisted = [p for p in on_disk if os.path.abspath(p) not in names and checkpoint_step(p) is not None]
        return listed, _newest_first(unlisted)

    def checkpoint_to_resume(self) -> str | None:
        """The newest intact checkpoint (see the module docstring); None when the folder has no checkpoint at all.
        Raises DamagedCheckpointError when there are checkpoints and none is intact."""
        listed, unlisted = self.candidates()
        damaged, chosen = [], None
        for prefix in listed + unlisted:
            problem = check_checkpoint(prefix)
            if problem is None:
                chosen = prefix
                break
            damaged.append((prefix, problem))
        if chosen is not None and not damaged and chosen in listed:
            return chosen
        if chosen is None and not damaged:
            return None
        what = "; ".join(f"{os.path.basename(p)} ({why})" for p, why in damaged)
        if chosen is None:
            raise DamagedCheckpointError(
                f"--resume: no intact checkpoint in {self.directory}: {what}. Restore the folder from a copy, or "
                f"train from scratch (without --resume, or into another --run_dir)")
        if damaged:
            log.warning("--resume: damaged checkpoint%s in %s: %s. Resuming from the newest intact one, %s (step %s); "
                        "the damaged files are left in place, no longer listed (a save of the same step replaces "
                        "them)", "s" if len(damaged) > 1 else "", self.directory, what, os.path.basename(chosen),
                        checkpoint_step(chosen))
        else:
            log.warning("--resume: the checkpoint state file of %s lists no checkpoint; resuming from %s, found by "
                        "its file name", self.directory, os.path.basename(chosen))
        step = checkpoint_step(chosen)
        keep = [p for p in reversed(listed) if checkpoint_step(p) is not None and checkpoint_step(p) < step
                and glob.glob(glob.escape(p) + ".*")]
        self._write_state(keep + [chosen])
        self.manager = self._manager()
        return chosen

    def _write_state(self, prefixes) -> None:
        """Rewrites the `checkpoint` state file to list `prefixes` (oldest first; the last is the latest), the
        text CheckpointState proto the manager writes: names relative to the folder, and each checkpoint's
        timestamp kept (the manager only rotates checkpoints newer than `last_preserved_timestamp`; others would
        be kept forever, unlisted)."""
        try:
            old = tf.train.get_checkpoint_state(self.directory)
        except (tf.errors.OpError, ValueError):
            old = None
        stamps = dict(zip(map(os.path.abspath, old.all_model_checkpoint_paths),
                          old.all_model_checkpoint_timestamps)) if old else {}
        now = time.time()
        times = [stamps.get(os.path.abspath(p), now) for p in prefixes]
        preserved = min([old.last_preserved_timestamp] if old and old.last_preserved_timestamp else [now - 1.0])
        preserved = min(preserved, min(times) - 1.0)
        lines = [f'model_checkpoint_path: "{os.path.basename(prefixes[-1])}"']
        lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in prefixes]
        lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
        lines.append(f"last_preserved_timestamp: {preserved!r}")
        fsutil.atomic_write_text(os.path.join(self.directory, "checkpoint"), "\n".join(lines) + "\n")

    def last_complete(self) -> str:
        """What a failed write leaves: the checkpoint a `--resume` would start from (read from disk)."""
        try:
            path = tf.train.latest_checkpoint(self.directory)
        except (tf.errors.OpError, ValueError):
            path = None
        if path is None:
            return f"no complete checkpoint in {self.directory} yet"
        return f"last complete checkpoint: step {checkpoint_step(path)} ({path}); continue with --resume once the " \
               f"file can be written"

    # ---- save ---------------------------------------------------------------------------------------------------
    def save(self, step):
        try:
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
        except (tf.errors.OpError, OSError) as err:
            if isinstance(err, tf.errors.UnimplementedError):
                raise
            prefix = os.path.join(self.directory, f"ckpt-{step}")
            self._remove_unlisted(prefix)
            raise fsutil.write_error(prefix, err, what="checkpoint") from None

    def _remove_unlisted(self, prefix) -> None:
        """Removes what a failed save left of `prefix` (unless the state file on disk lists it: then it is whole)."""
        shutil.rmtree(prefix + "_temp", ignore_errors=True)
        try:
            state = tf.train.get_checkpoint_state(self.directory)
            listed = {os.path.abspath(p) for p in state.all_model_checkpoint_paths} if state else set()
        except (tf.errors.OpError, ValueError):
            return
        if os.path.abspath(prefix) not in listed:
            for path in glob.glob(glob.escape(prefix) + ".*"):
                try:
                    os.remove(path)
                except OSError:
                    pass
