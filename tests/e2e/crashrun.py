"""Runs a project entry point with a SIGKILL injected at a chosen point of a file write.

    LITEDEPTH_CRASH=SPEC python tests/e2e/crashrun.py -m litedepth_tf.train --flag ...
    LITEDEPTH_CRASH=SPEC python tests/e2e/crashrun.py export/export_tflite.py --flag ...
    LITEDEPTH_CRASH=SPEC python tests/e2e/crashrun.py -c "python code" args ...

The hooks live here, not in the library, and wrap the lowest call that every write of that kind goes through:

SPEC `replace:GLOB:N`  the N-th `os.replace(src, dst)` whose destination's file name matches GLOB (fnmatch): the
                       finished temp file `src` is cut to half its size, then the process SIGKILLs itself before
                       the rename. On disk this is exactly a kill in the middle of writing the temp file.
SPEC `merge:N`         the N-th TensorFlow checkpoint save of this process, inside `merge_v2_checkpoints`: the
                       shard `ckpt-K_temp/part-*.data-*` is written (then cut to half), the final `ckpt-K.index` /
                       `.data` are not, and the `checkpoint` state file still names the previous checkpoint.
SPEC `state:N`         the N-th update of the `checkpoint` state file (`update_checkpoint_state_internal`), before
                       it is written. TF's CheckpointManager.save updates it twice per save: first naming the new
                       checkpoint (old ones still listed), then, after deleting those beyond max_to_keep, without
                       them. N=1: `ckpt-K` is complete but not named; N=2: `ckpt-K` is named, the oldest checkpoint
                       is deleted but still listed.
SPEC `signal:NAME:N`   not a kill: after the N-th training step of this process returns (`Trainer.train_step`),
                       the process sends itself signal NAME (SIGTERM, SIGINT): a real signal, delivered between
                       two steps at a step the test chooses, to the handler the trainer installed.

LITEDEPTH_REPLACE_LOG=FILE appends every `os.replace` destination (absolute path) to FILE, one a line, before the
rename, so a test can check that a writer went through a temp file + rename at all.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import runpy
import signal
import sys


def _die(note: str) -> None:
    sys.stderr.write(f"crashrun: SIGKILL {note}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _halve(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "rb+") as f:
        f.truncate(size // 2)


def install(spec: str | None, replace_log: str | None) -> None:
    kind, _, rest = (spec or "").partition(":")
    count = [0]
    if replace_log or kind == "replace":
        pattern, _, n = rest.rpartition(":") if kind == "replace" else ("", "", "0")
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            dst_abs = os.path.abspath(os.fspath(dst))
            if replace_log:
                with open(replace_log, "a") as f:
                    f.write(dst_abs + "\n")
            if kind == "replace" and fnmatch.fnmatch(os.path.basename(dst_abs), pattern):
                count[0] += 1
                if count[0] == int(n):
                    if os.path.isfile(src):
                        _halve(os.fspath(src))
                    _die(f"before renaming a half-written temp file onto {dst_abs}")
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    if kind == "merge":
        from tensorflow.python.checkpoint import functional_saver

        io_ops = functional_saver.gen_io_ops
        real_merge = io_ops.merge_v2_checkpoints

        def merge(checkpoint_prefixes, destination_prefix, *args, **kwargs):
            count[0] += 1
            if count[0] == int(rest):
                for prefix in checkpoint_prefixes:
                    prefix = prefix.numpy().decode() if hasattr(prefix, "numpy") else os.fspath(prefix)
                    for data in glob.glob(prefix + ".data-*"):
                        _halve(data)
                _die(f"inside the checkpoint merge of {destination_prefix}")
            return real_merge(checkpoint_prefixes, destination_prefix, *args, **kwargs)

        io_ops.merge_v2_checkpoints = merge
    elif kind == "state":
        from tensorflow.python.checkpoint import checkpoint_management

        real_update = checkpoint_management.update_checkpoint_state_internal

        def update(save_dir, model_checkpoint_path, *args, **kwargs):
            count[0] += 1
            if count[0] == int(rest):
                _die(f"before state file update {count[0]} (latest {model_checkpoint_path})")
            return real_update(save_dir, model_checkpoint_path, *args, **kwargs)

        checkpoint_management.update_checkpoint_state_internal = update
    elif kind == "signal":
        from litedepth_tf.training import loop

        name, _, n = rest.partition(":")
        real_step = loop.Trainer.train_step

        def train_step(self, batch):
            logs = real_step(self, batch)
            count[0] += 1
            if count[0] == int(n):
                sys.stderr.write(f"crashrun: {name} after training step {count[0]} of this process\n")
                sys.stderr.flush()
                os.kill(os.getpid(), getattr(signal, name))
            return logs

        loop.Trainer.train_step = train_step
    elif kind not in ("", "replace"):
        raise SystemExit(f"crashrun: unknown LITEDEPTH_CRASH {spec!r}")


def main(argv) -> None:
    install(os.environ.get("LITEDEPTH_CRASH"), os.environ.get("LITEDEPTH_REPLACE_LOG"))
    if argv[:1] == ["-m"]:
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[:1] == ["-c"]:
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<crashrun -c>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
