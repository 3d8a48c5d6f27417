"""Tiny shared progress-bar helper (wraps tqdm).

    from litedepth_tf.common.progress import progress_bar, track
    for x in track(items, desc="checking"): ...
    bar = progress_bar(total=n, desc="frames"); bar.update(1); bar.close()

Bars go to stderr. Set ``LITEDEPTH_NO_PROGRESS=1`` to silence every bar (CI logs, tests).
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def _disabled(disable):
    if disable is not None:
        return bool(disable)
    return os.environ.get("LITEDEPTH_NO_PROGRESS", "") not in ("", "0")


def progress_bar(total=None, desc=None, unit="it", disable=None, **kwargs):
    """A tqdm bar (``update``/``close``/``set_postfix``), or a no-op bar when disabled."""
    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(total=total, desc=desc, unit=unit, disable=_disabled(disable), **kwargs)


def track(iterable, desc=None, total=None, unit="it", disable=None, **kwargs):
    """Iterate with a progress bar."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=_disabled(disable), **kwargs)
