"""Threads around the network: a read-ahead iterator and thread pools that stop cleanly.

The network runs in the calling thread (the LiteRT interpreter and TensorFlow release the GIL while they run);
decoding, PNG encoding (zlib) and file writes release it too, so these threads overlap on several cores.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from concurrent.futures import ThreadPoolExecutor


@contextlib.contextmanager
def thread_pools(*sizes, name="predict"):
    """Thread pools that, on an error or Ctrl-C, drop their queued work instead of finishing it."""
    pools = [ThreadPoolExecutor(max_workers=n, thread_name_prefix=name) for n in sizes]
    try:
        yield pools
    except BaseException:
        for p in pools:
            p.shutdown(wait=True, cancel_futures=True)
        raise
    for p in pools:
        p.shutdown(wait=True)


class Prefetch:
    """Runs `fn` over `iterable` in one background thread, `depth` items ahead (video frames: decoding overlaps
    the network). Iterating re-raises the thread's exception; `close` stops it and closes `iterable`."""

    _DONE = object()

    def __init__(self, iterable, fn, depth=4, name="predict-read"):
        self._queue, self._stop = queue.Queue(depth), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterable, fn), daemon=True, name=name)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable, fn):
        try:
            for item in iterable:
                if not self._put((True, fn(item))):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((False, err))
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            self._put((True, self._DONE))

    def __iter__(self):
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._DONE:
                return
            yield item

    def close(self):
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()
