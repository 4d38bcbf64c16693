"""What train.py checks before it creates or touches a run directory; each problem is one click.UsageError line.

* `check_writable_folder`, `check_run_dir_free`: the output folder can be written and no other train.py holds
  the run.

The checks of `--resume` (an exact resume's state and options, a transfer pickle) live in `training.resume`.
"""

from __future__ import annotations

import fcntl
import os

import click

from training import run_control


def check_writable_folder(folder: str) -> None:
    """`folder`, or the nearest folder above it that exists, must be a folder this process can write in."""
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise click.UsageError(f"--outdir: {path} is a file, not a folder; choose another location")
    if not os.access(path, os.W_OK | os.X_OK):
        raise click.UsageError(
            f"--outdir: cannot write in {path} (read-only or no permission); choose a writable location"
        )


def check_run_dir_free(run_dir: str) -> None:
    """Refuse a run directory whose lock another train.py holds, without taking or changing the lock file."""
    path = os.path.join(run_dir, run_control.LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # No lock file yet: nobody holds it.
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        raise click.UsageError(
            f"run directory {run_dir} is in use by process {holder} (another train.py); wait for it to finish"
        ) from None
    finally:
        os.close(fd)
