"""Control of a run directory while training runs in it: one run at a time (a lock), and clean stops on signals.

`RunLock` holds an exclusive `fcntl.flock` on `<run_dir>/.run.lock` for the lifetime of the training
process, with the holder's pid written in the file. The kernel drops the lock when the process ends in any
way (even `kill -9`), so a stale lock file never blocks a resume; a second `train.py` on the same directory
is refused with one line naming the holder's pid.

`StopSignals` turns the first SIGINT (Ctrl-C) or SIGTERM into a request that the training loop honours at the
next iteration boundary (it writes a final snapshot and says which one a resume continues from); a second
signal stops at once with KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
from typing import Any

LOCK_NAME = ".run.lock"


class RunError(RuntimeError):
    """A run stopped for a reason the user can act on (e.g. a full disk); `str()` is one line saying what was kept."""


class RunDirBusyError(RunError):
    """Another process holds the lock of a run directory; the message names its pid."""


class RunLock:
    """Exclusive lock on a run directory (`fcntl.flock`, released when the process ends); use as a context manager."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            run_dir = os.path.dirname(self.path)
            raise RunDirBusyError(
                f"run directory {run_dir} is in use by process {holder} (another train.py); "
                f"wait for it to finish or stop it (kill -TERM {holder}) before resuming"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class StopSignals:
    """Within the block, the first SIGINT/SIGTERM sets `requested` (and `reason`); a second raises KeyboardInterrupt.

    Installed only in the main thread (elsewhere signals cannot be caught and the block changes nothing).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.reason is not None

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:
            raise KeyboardInterrupt(f"second {name}: stopping at once")
        self.reason = name
        print(f"\n{name} received: stopping after this iteration (send it again to stop at once)...", flush=True)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
