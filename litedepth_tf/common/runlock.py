"""One process per output folder: a lock file that names its holder (pid, host, start time).

    with RunLock(run_dir):          # RunLockedError (a cli.InputError) if a live process holds it
        train(...)

The lock file (`train.lock` in the folder) is created with O_CREAT | O_EXCL, so exactly one process creates it,
and that process holds an exclusive `flock` on it while it runs. The kernel drops a flock when its process dies
(kill -9 and power-off of the holder's machine included, for a local disk), so "is the holder alive?" is answered
by trying the flock, never by guessing from a pid that may have been reused:

* the flock is held -> another process is running there: refused, naming its pid, host and start time;
* the file exists but nobody holds the flock -> its process ended without releasing it (killed, or the folder was
  copied from another machine): taken over, with one warning naming the previous holder;
* the file system does not support flock (some network file systems) -> the pid is checked instead: a live pid on
  this host, or any pid on another host (which cannot be checked from here), refuses; a dead pid on this host is
  taken over.

Released (file removed, then the flock dropped) by `release` / the end of the ``with`` block. A process that
opened the old file just before it was removed notices that the name now points to another file (or none) and
tries again, so two processes never both believe they hold the lock.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys

from litedepth_tf.common.cli import InputError

log = logging.getLogger("litedepth_tf.common.runlock")

LOCK_NAME = "train.lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class RunLockedError(InputError):
    """The folder is in use by another live process (named in the message)."""


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except (OverflowError, ValueError, TypeError, OSError):
        return False
    return True


def _read(fd) -> dict:
    try:
        data = os.pread(fd, 65536, 0)
        info = json.loads(data.decode("utf-8")) if data.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder(info) -> str:
    if not info:
        return "a process that has not written its name yet"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {info.get('started', '?')}"
            + (f" ({info['command']})" if info.get("command") else ""))


class RunLock:
    """The lock of `folder` (see the module docstring); `what` names the folder in messages (e.g. "--run_dir")."""

    def __init__(self, folder, what: str = "--run_dir", name: str = LOCK_NAME):
        self.folder, self.what = os.fspath(folder), what
        self.path = os.path.join(self.folder, name)
        self.fd = None
        self.took_over: dict | None = None  # the previous holder's record when the lock was taken over

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    @property
    def info(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:8]))}

    def _refuse(self, info, note: str = "") -> RunLockedError:
        return RunLockedError(f"{self.what} {self.folder} is in use by another run: {_holder(info)}{note} (lock file "
                              f"{self.path}); wait for it to end or stop it, or choose another {self.what}")

    def acquire(self, attempts: int = 5) -> "RunLock":
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(attempts):
            try:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                try:
                    fd, created = os.open(self.path, os.O_RDWR), False
                except FileNotFoundError:  # released in between: create it again
                    continue
            try:
                locked = self._flock(fd, created)
                if not locked:
                    continue
            except RunLockedError:
                os.close(fd)
                raise
            except BaseException:  # e.g. the record could not be written (disk full): leave no lock file behind
                if created:
                    with contextlib.suppress(OSError):
                        if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                            os.remove(self.path)
                os.close(fd)
                raise
            self.fd = fd
            return self
        raise self._refuse(_read_path(self.path), " (the lock file kept changing while this run tried to take it)")

    def _flock(self, fd, created) -> bool:
        """Takes the flock on `fd` and writes this process's record; False when the name now points elsewhere."""
        previous = {} if created else _read(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            checked_by = "flock"
        except BlockingIOError:
            raise self._refuse(_read(fd) or previous) from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                raise
            checked_by = "pid"  # no flock on this file system: judge by the recorded pid
            if previous and (previous.get("host") != socket.gethostname() or _pid_alive(previous.get("pid"))):
                raise self._refuse(previous, " (this file system has no file locks, so the lock is trusted as "
                                             "long as that process may be running; delete the lock file if it "
                                             "is not)") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:  # removed (and maybe re-created) by its holder between our open and our flock
            os.close(fd)
            return False
        if not created:
            previous = _read(fd) or previous
            state = ("is no longer running" if previous.get("host") == socket.gethostname()
                     and not _pid_alive(previous.get("pid")) else "does not hold it any more")
            if checked_by == "flock" and previous.get("host") not in (None, socket.gethostname()):
                state = "ran on another machine (the folder was copied or is shared) and does not hold it"
            log.warning("taking over the lock file %s of %s: that process %s", self.path, _holder(previous), state)
            self.took_over = previous
        data = json.dumps(self.info).encode("utf-8") + b"\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        with contextlib.suppress(OSError):
            os.fsync(fd)
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                    os.remove(self.path)
        finally:
            os.close(self.fd)  # drops the flock
            self.fd = None


def _read_path(path) -> dict:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}
    try:
        return _read(fd)
    finally:
        os.close(fd)
