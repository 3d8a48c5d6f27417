"""Atomic file writes, used by every module that writes results (weights, JSON, exports, PNGs).

A write goes to a temp file in the destination's folder (same file system), is flushed and fsync'ed, then
`os.replace`d over the destination. A kill at any moment leaves either the old file or the new one, never a
truncated one. A leftover `*.tmp` file (from a kill before the rename) is harmless and never read.

A written file gets the permissions a plain ``open(path, "w")`` would give it: a new file 0666 minus the umask
(what the folder's default ACL allows, where it has one), a replaced file the permission bits of the file it
replaces; so an exported model or a depth map in a shared folder is as readable as any other file written there
(`tempfile.mkstemp` would make every one 0600).

A write that fails (a full disk, an I/O error, any OSError of the writer, the fsync or the rename) removes its temp
file and raises `WriteError`: one line naming the destination, the error, and what is intact (the previous file is
unchanged, or no file was written). `WriteError` is a `cli.InputError`, so a command ends with that line, exit 2.

    atomic_write_bytes(path, data)
    atomic_write_text(path, text)
    atomic_write_json(path, obj, indent=2)
    with atomic_path(path) as tmp: writer(tmp)     # for libraries that want a file name (h5, PNG encoders)
    tmp = stage_bytes(path, data); ...; commit_staged(tmp, path)   # write many in parallel, rename in order
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import json
import os
import secrets
import shutil
import stat

from litedepth_tf.common.cli import InputError


def _fsync_dir(folder: str) -> None:
    try:  # make the rename itself durable (not supported on every platform / file system)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _create_temp(path: str, suffix: str) -> tuple[int, str]:
    """A new hidden temp file next to `path` (``.NAME.<random><suffix>``, same folder) -> (open fd, its path).

    Created with mode 0666 so that the kernel applies the umask (and the folder's default ACL) exactly as for a
    plain ``open()``; when `path` exists, its permission bits are copied, as writing over it in place keeps them."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = "." + os.path.basename(path) + "."
    for _ in range(100):
        tmp = os.path.join(folder, prefix + secrets.token_hex(4) + suffix)
        try:
            fd = os.open(tmp, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777
        except OSError:  # no previous file (or not readable): the kernel's mode stands
            return fd, tmp
        try:
            os.fchmod(fd, mode) if hasattr(os, "fchmod") else os.chmod(tmp, mode)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return fd, tmp
    raise FileExistsError(errno_codes.EEXIST, "no unused temp file name", os.path.join(folder, prefix + "*" + suffix))


class WriteError(OSError, InputError):
    """A file could not be written (disk full, I/O error, ...). The message names the file, the error and what is
    intact; `errno` and `filename` are those of the underlying error / the destination."""

    def __init__(self, message, errno=None, filename=None):
        super().__init__(message)
        self.message = message
        self.errno, self.filename = errno, filename

    def __str__(self) -> str:  # the message alone (OSError would format errno / filename around it)
        return self.message


def describe_error(err) -> str:
    """One line for an OSError (h5py's multi-line ENOSPC included) or a TensorFlow OpError: the errno's text and
    name when there is one, else the first line of the message without TensorFlow's op decorations."""
    code = getattr(err, "errno", None)
    if isinstance(err, OSError) and code:
        return f"{os.strerror(code)} ({errno_codes.errorcode.get(code, code)})"
    text = str(getattr(err, "message", None) or err).strip()
    if text.startswith("{{function_node"):  # TensorFlow: "{{function_node __wrapped__SaveV2...}} what [Op:SaveV2]"
        text = text.split("}}", 1)[-1].strip()
    text = text.split(" [Op:", 1)[0]
    text = "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(err).__name__
    head, sep, rest = text.partition("; ")
    if sep and head.startswith("/") and " " not in head:  # "<the temp file TF was writing>; <the error>"
        text = rest
    return text


def write_error(path, err, existed: bool | None = None, what: str = "") -> WriteError:
    """The `WriteError` for a failed write of `path` (``what`` it is, e.g. "checkpoint"), saying whether a previous
    version of it is still intact (``existed``; None: say nothing about it)."""
    intact = {True: " (its previous version is unchanged)", False: " (no file was written)", None: ""}[existed]
    return WriteError(f"cannot write {what + ' ' if what else ''}{os.fspath(path)}: {describe_error(err)}{intact}",
                      errno=getattr(err, "errno", None) if isinstance(err, OSError) else None,
                      filename=os.fspath(path))


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yields a temp path next to `path`; on a clean exit the temp file is fsync'ed and renamed to `path`,
    on an exception it is removed. `suffix` lets writers that check the extension (Keras: `.weights.h5`) work:
    the temp name then ends with it. An OSError of the writer (raised inside the ``with``), of the fsync or of the
    rename becomes a `WriteError` naming `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    existed = os.path.exists(path)
    try:
        fd, tmp = _create_temp(path, suffix)
        os.close(fd)
    except OSError as err:
        raise write_error(path, err, existed) from err
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, InputError):
            raise write_error(path, err, existed) from err
        raise


def stage_bytes(path, data) -> str:
    """The first half of an atomic write, for writers that overlap many writes: `data` goes to a hidden temp file
    next to `path` (same folder, `.name.*.tmp`), flushed and fsync'ed. Returns the temp path, to be passed to
    `commit_staged` (the rename, e.g. in a chosen order) or `discard_staged`."""
    path = os.fspath(path)
    try:
        fd, tmp = _create_temp(path, ".tmp")
    except OSError as err:
        raise write_error(path, err, os.path.exists(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        discard_staged(tmp)
        raise write_error(path, err, os.path.exists(path)) from None
    except BaseException:
        discard_staged(tmp)
        raise
    return tmp


def commit_staged(tmp, path, sync_dir: bool = True) -> str:
    """The second half: renames the staged temp file onto `path` (and fsyncs the folder unless `sync_dir` is
    False, for a caller that syncs each folder once after several renames with `fsync_dir`)."""
    try:
        os.replace(tmp, path)
    except OSError as err:
        discard_staged(tmp)
        raise write_error(path, err, os.path.exists(path)) from None
    if sync_dir:
        _fsync_dir(os.path.dirname(os.path.abspath(os.fspath(path))))
    return os.fspath(path)


def discard_staged(tmp) -> None:
    with contextlib.suppress(OSError):
        os.remove(tmp)


def fsync_dir(folder) -> None:
    """Makes the renames into `folder` durable (a no-op where the platform cannot)."""
    _fsync_dir(os.fspath(folder))


def atomic_write_bytes(path, data: bytes) -> str:
    """Writes `data` to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return os.fspath(path)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> str:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, obj, indent: int = 2, **kwargs) -> str:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, **kwargs) + "\n")


def atomic_save_weights(model, path) -> str:
    """`model.save_weights(path)` atomically (the temp name keeps the `.weights.h5` ending Keras insists on)."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)
    return os.fspath(path)


class NotWritableError(OSError, InputError):
    """A folder where a run must write cannot be written, or has too little free space."""


def check_writable(folder, min_free_bytes: int = 0, what: str = "run directory", space_hint: str = "") -> str:
    """Creates ``folder``, writes + fsyncs + removes a probe file there, and checks that at least
    ``min_free_bytes`` are free on its file system. Raises NotWritableError naming the folder (``what`` it is, and
    the free and needed space, then ``space_hint``, e.g. the flag that sets the minimum) so a run fails at start-up,
    not at its first checkpoint hours later. Returns the folder."""

    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write_probe_{os.getpid()}")
        with open(probe, "wb") as fh:
            fh.write(b"litedepth_tf write probe\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.remove(probe)
    except OSError as err:
        raise NotWritableError(f"cannot write into the {what} {folder!r}: {err.strerror or err}") from err
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise NotWritableError(f"not enough free space for the {what} {folder!r}: {free / 2**20:.0f} MiB "
                               f"free, at least {min_free_bytes / 2**20:.0f} MiB needed{space_hint}")
    return folder
