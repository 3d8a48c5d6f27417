"""Preemption: SIGTERM / SIGINT during training stop the run at the end of the current step, with a checkpoint.

Cloud machines are stopped with SIGTERM and a grace period (often 30 s); Ctrl-C sends SIGINT. While `Trainer.fit`
runs (in the main thread), `StopSignals` replaces both handlers with one that only records the signal: nothing is
written from inside the handler (Python runs it between two bytecodes of the main thread, possibly in the middle
of a write). The loop asks `requested()` between steps, and `fit` then writes a checkpoint of the state at that
step (unless that step was just saved), flushes TensorBoard, writes `last.weights.h5` and raises `Preempted`; the
`train` command prints one line and exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT; see
`litedepth_tf.common.cli`). `--resume` continues from that checkpoint; with `--deterministic` the result equals an
uninterrupted run bit for bit. A second signal while the first is being handled stops at once (the handlers are
put back first: SIGINT raises KeyboardInterrupt, SIGTERM gets the previous handler's action, by default the end
of the process): the checkpoints written before are whole, as after a kill -9.

Under MultiWorkerMirroredStrategy a signal reaches one worker (or each at another moment); the workers must still
stop after the same step, since the checkpoint save is collective. `requested()` then all-reduces every replica's
signal number once per step (`distribute.replica_values_fn`), so every worker sees the same answer after the same
step, and knows which replica was signalled.
"""

from __future__ import annotations

import os
import signal
import threading

import tensorflow as tf

from litedepth_tf.training.distribute import replica_values_fn

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Training stopped by a signal after `step`, with its state saved in `checkpoint`."""

    def __init__(self, signum: int, step: int, checkpoint: str | None, total_steps: int, source: str = ""):
        self.signum, self.step, self.checkpoint, self.total_steps, self.source = signum, step, checkpoint, \
            total_steps, source
        super().__init__(f"preempted by {signal.Signals(signum).name}{source} at step {step} of {total_steps}: "
                         f"checkpoint {checkpoint} written; continue with --resume")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Records SIGTERM / SIGINT while installed (a context manager); `requested()` is the stop decision, the same
    on every worker when `strategy` spans several processes (MultiWorkerMirroredStrategy)."""

    def __init__(self, strategy=None):
        self.signum = 0
        self.source = ""
        self._previous = {}
        self._collective = replica_values_fn(strategy) if isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy) else None

    def install(self) -> "StopSignals":
        """Replaces the SIGTERM / SIGINT handlers (main thread only: elsewhere the caller's handlers stay)."""
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Puts the previous handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        return self.install()

    def __exit__(self, *exc) -> bool:
        self.restore()
        return False

    def _handle(self, signum, frame):
        if self.signum:  # the second signal: stop now
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        try:  # a plain write(2): no lock that the interrupted code might hold
            os.write(2, f"\nreceived {signal.Signals(signum).name}: stopping after this step with a checkpoint "
                        f"(send it again to stop at once)\n".encode())
        except OSError:
            pass

    def requested(self) -> bool:
        """True when this process, or under multi-worker training any worker, received a stop signal."""
        if self._collective is None:
            return bool(self.signum)
        values = self._collective(self.signum)
        signalled = [i for i, v in enumerate(values) if v]
        if signalled and not self.signum:
            self.signum = values[signalled[0]]
            self.source = f" (sent to replica {signalled[0]})"
        return bool(signalled)
