"""Bad samples: a pair TensorFlow cannot use is named, counted and skipped (``on_bad_sample="skip"``) or fatal
(``"fail"``).

Each dataset reports into a `BadSampleCounter` that belongs to its caller (a training run, an evaluation), never
to the process: `make_dataset(..., bad_sample_counter=c)`; the trainer logs ``c.count`` as
``data/skipped_samples``. `diagnose_pair` re-checks a pair with PIL to name the problem (only failures run it).
"""

from __future__ import annotations

import atexit
import gc
import logging
import re
import sys
import threading

import numpy as np

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, MAX_DEPTH
from litedepth_tf.data.check import check_pair

ON_BAD_SAMPLE = ("skip", "fail")
log = logging.getLogger("litedepth_tf.data.pipeline")


class BadSampleError(InputError):
    """A sample that cannot be used, with ``on_bad_sample="fail"`` (the message names the file and the problem),
    or a split whose every sample is bad."""


class BadSampleCounter:
    """Thread-safe record of dropped samples (tf.data calls it from its own threads).

    ``count``: every drop (a file that stays bad is counted again each epoch it is met); ``problems``:
    ``{file: first problem}``; ``warned``: the (file, problem) pairs already logged (one warning each).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.count, self.problems, self.warned = 0, {}, set()

    def add(self, messages):
        """Counts one dropped sample; ``messages`` are ``"file: problem"`` lines. Returns the new lines."""
        new = []
        with self._lock:
            self.count += 1
            for m in messages:
                f, _, problem = m.partition(": ")
                self.problems.setdefault(f, problem)
                if m not in self.warned:
                    self.warned.add(m)
                    new.append(m)
        return new


def diagnose_pair(rgb_path, depth_path, size=(INPUT_HEIGHT, INPUT_WIDTH), max_depth=MAX_DEPTH, **check_kw):
    """``["file: problem", ...]`` for a pair TensorFlow could not use (PIL re-check, as data_check does);
    ``check_kw``: `check.check_pair`'s ``depth_scale`` / ``at_least`` for other data sets."""
    try:
        errors = check_pair(rgb_path, depth_path, size, max_depth, min_valid=0.0, **check_kw)["errors"]
    except Exception as e:  # noqa: BLE001 - the diagnosis itself must never be the failure
        errors = [f"{rgb_path}: re-check failed ({type(e).__name__}: {e})"]
    seen, out = set(), []
    for m in errors:  # one (the first) problem per file
        f = m.partition(": ")[0]
        if f not in seen:
            seen.add(f)
            out.append(m)
    return out or [f"{rgb_path}: TensorFlow could not read or decode this pair (depth {depth_path}), but both files "
                   "re-check fine (changed while being read?)"]


class _BadSamples:
    """Per-dataset reporting: counts into the caller's counter (or a private one), warns once per file and
    problem, raises with ``fail`` or when every one of the ``n`` samples has been bad."""

    def __init__(self, on_bad_sample, where, counter=None):
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f"on_bad_sample must be one of {ON_BAD_SAMPLE}, got {on_bad_sample!r}")
        self.mode, self.where, self.n = on_bad_sample, where, None
        self.counter = BadSampleCounter() if counter is None else counter
        self._lock = threading.Lock()
        self._bad = set()

    def expect(self, n):
        """The dataset's ``n`` usable pairs (after the header checks / the cache): "every sample is bad" counts
        only failures among these, not the pairs already left out."""
        with self._lock:
            self.n, self._bad = n, set()

    def report(self, key, messages, detail=""):
        if self.mode == "fail":
            raise BadSampleError(f"bad sample in {self.where} (on_bad_sample=fail): " + "; ".join(messages) + detail)
        new = self.counter.add(messages)
        for m in new:
            log.warning("skipping a bad sample of %s: %s", self.where, m)
        with self._lock:
            self._bad.add(key)
            every = self.n is not None and len(self._bad) >= self.n
        if every:
            raise BadSampleError(f"every one of the {self.n} samples of {self.where} is bad (the last: "
                                 + "; ".join(messages) + ")")

    def report_in_graph(self, rgb_path, depth_path, size, max_depth, **check_kw):
        """The ``tf.py_function`` body (runs only for a failed element)."""
        r, d = rgb_path.numpy().decode(), depth_path.numpy().decode()
        self.report((r, d), diagnose_pair(r, d, size, max_depth, **check_kw))
        return np.int32(0)


def bad_sample_error(err):
    """The ``BadSampleError`` raised inside the tf.data graph that ``err`` (a ``tf.errors.OpError`` from iterating
    the dataset) carries, as a plain ``BadSampleError`` with just its message (file and problem); ``None`` if
    ``err`` is any other error. Callers re-raise it so that users see one line, not TensorFlow's op trace."""
    m = re.search(r"BadSampleError: ([^\n]+)", str(err))
    return BadSampleError(m.group(1).strip()) if m else None


@atexit.register
def _collect_at_exit():
    """A tf.data iterator still alive when the interpreter shuts down is destroyed during finalization; a parallel
    map thread inside the bad-sample ``py_function`` can then never take the GIL and the process hangs (seen
    after an uncaught error: ``sys.last_traceback`` keeps the iterator). Dropping that traceback and collecting
    garbage while the interpreter is still whole (atexit runs before finalization) destroys it in time."""
    for name in ("last_exc", "last_type", "last_value", "last_traceback"):
        if getattr(sys, name, None) is not None:
            setattr(sys, name, None)
    gc.collect()
