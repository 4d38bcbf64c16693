"""Atomic file writes: every file the project writes goes through here.

A write goes to a hidden temp name in the destination's folder, `.<name>.tmp-<pid>-<hex><suffix>`, is flushed
and fsynced, renamed over the destination (atomic on POSIX), and the folder is fsynced so that the rename
itself survives a power cut. A crash at any moment leaves either the old file or the new one under the final
name, never a partial one; on any error inside the block the temp file is removed. A process killed with
SIGKILL cannot clean up after itself: `remove_temp_files(folder)` removes what such a process left behind
(train.py on resume, generate.py in its --outdir, calc_metrics.py in the statistics cache), and `is_temp_name`
is the one test for "is this a temp file of ours".
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import IO

_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}")


def temp_path_for(path: str | os.PathLike, suffix: str = "") -> str:
    """A fresh hidden temp path beside `path` (same folder, so the final rename never crosses file systems).

    `suffix` is appended for writers that pick a format by extension (e.g. `.png` for PIL, `.npz` for NumPy).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def is_temp_name(name: str) -> bool:
    """True for a base name made by `temp_path_for` (any suffix)."""
    return bool(_TEMP_NAME.match(os.path.basename(name)))


def _fsync_path(path: str) -> None:
    if os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for name in files:
                _fsync_path(os.path.join(root, name))
        _fsync_dir(path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Some file systems do not open folders; the rename is still atomic there.
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


class WriteError(OSError):
    """An atomic write failed (nothing was written under the final name); `str()` is one line naming the file and
    the reason, with 'no space left on device' for a full disk. `errno` is the original error's, if any."""

    def __init__(self, message: str, errno_value: int | None = None):
        super().__init__(message)
        self.errno = errno_value


def _is_write_failure(error: BaseException, tmp: str) -> bool:
    """OS errors while writing `tmp` (not those naming another file, e.g. a source being read), and torch.save's
    RuntimeErrors from its zip writer (how torch reports a full disk)."""
    text = str(error)
    if isinstance(error, OSError):
        filename = os.fspath(error.filename) if isinstance(error.filename, (str, os.PathLike)) else None
        return filename is None or os.path.abspath(filename).startswith(tmp)
    return isinstance(error, RuntimeError) and ("inline_container" in text or "PytorchStreamWriter" in text)


def describe_write_error(path: str | os.PathLike, error: BaseException) -> str:
    """One line for a failed write: 'no space left on device' for a full disk, else the OS message."""
    errno_value = getattr(error, "errno", None)
    text = str(error)
    torch_writer = "inline_container" in text or "PytorchStreamWriter" in text
    if errno_value == errno.ENOSPC or "No space left" in text or torch_writer:
        return f"could not write {os.fspath(path)}: no space left on device (free some space and run again)"
    if isinstance(error, PermissionError) or errno_value == errno.EACCES:
        return f"could not write {os.fspath(path)}: permission denied (choose a writable location)"
    reason = getattr(error, "strerror", None) or (text.splitlines()[0] if text else type(error).__name__)
    return f"could not write {os.fspath(path)}: {reason}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temp path to write a file *or a folder* to; on success it replaces `path` atomically.

    For writers that take a path (`torch.save`, `PIL.Image.save`, `np.savez`, `zipfile.ZipFile`):

        with atomic_path("snapshot.pt") as tmp:
            torch.save(obj, tmp)

    A folder destination that already exists is replaced as a whole (removed just before the rename).
    On any error the temp file is removed; a failure to write (an OSError such as a full disk or a missing
    permission, or torch.save's zip-writer error) is raised as `WriteError` with a one-line message.
    """
    path = os.fspath(path)
    tmp = temp_path_for(path, suffix)
    try:
        yield tmp
        created = os.path.lexists(tmp)
        if created:
            _fsync_path(tmp)
            if os.path.isdir(tmp) and os.path.isdir(path):
                shutil.rmtree(path)
            os.replace(tmp, path)
            _fsync_dir(os.path.dirname(os.path.abspath(path)))
    except BaseException as error:
        _remove(tmp)
        if _is_write_failure(error, tmp) and not isinstance(error, WriteError):
            raise WriteError(describe_write_error(path, error), getattr(error, "errno", None)) from error
        raise
    if not created:
        raise FileNotFoundError(f"atomic write of {path}: the writer did not create {tmp}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temp file for writing (`mode` 'wb' or 'w'); on a clean exit it replaces `path` atomically.

    with atomic_write("stats.json", "w", encoding="utf-8") as f:
        f.write(text)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        with open(tmp, "x" + mode[1:], encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def _writer_alive(name: str) -> bool:
    """Is the process whose pid a temp name carries still running (so its write may be in progress)?"""
    pid = int(_TEMP_NAME.match(name).group(1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # Another user's live process.
    return True


def remove_temp_files(folder: str | os.PathLike, dead_writers_only: bool = False) -> list[str]:
    """Remove the temp files and folders of atomic writes left in `folder` (not recursive); returns their paths.

    `dead_writers_only`: keep temp files whose writing process (the pid in the name) still runs, for folders
    that other processes may be writing to at the same time (generate.py's --outdir, the statistics cache).
    """
    folder = os.fspath(folder)
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if is_temp_name(name) and not (dead_writers_only and _writer_alive(name)):
            path = os.path.join(folder, name)
            _remove(path)
            removed.append(path)
    return removed
