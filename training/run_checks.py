"""What train.py checks before it creates or touches a run directory; each problem is one click.UsageError line.

* `check_detectors`: every metric's detector file must be at hand now, not at the first snapshot.
* `check_writable_folder`, `check_run_dir_free`: the output folder can be written and no other train.py holds
  the run.

The checks of `--resume` (an exact resume's state and options, a transfer pickle) live in `training.resume`.
"""

from __future__ import annotations

import fcntl
import os

import click

from training import run_control


def check_detectors(
    metrics: list[str],
    kwargs: dict,
    resize: str = "legacy",
    resolution: int = 64,
    detector_flag: str = "--metric-detector",
) -> None:
    """Make sure every metric's detector is at hand (local path, detector folder or download cache) and fit.

    A detector that is not one of the published ones (a file or URL the user named) is also loaded, on the CPU,
    and called once the way each of its metrics calls it, on images of `resolution`: an unreadable file, an
    untrusted TorchScript file or a module with another call convention fails now with one line instead of a
    traceback inside the metric's process. With resize='clean' every detector is loaded to learn its input
    size. `detector_flag` names the option that gave `kwargs['detector']` in messages.
    """
    from metrics import detectors, metric_main

    uses: dict[str, list[str]] = {}
    for metric in metrics:
        uses.setdefault(kwargs.get("detector") or metric_main.default_detector(metric), []).append(metric)
    for url in sorted(uses):
        flag = detector_flag if url == kwargs.get("detector") else "--metrics"
        try:
            detectors.locate(url, kwargs.get("detector_dir"))
            if resize == "clean" or url not in metric_main.PUBLISHED_DETECTORS:
                detector = detectors.get_detector(url, "cpu", kwargs.get("detector_dir"))
                if resize == "clean":
                    detectors.input_size(detector, url)
                if url not in metric_main.PUBLISHED_DETECTORS:
                    calls = {tuple(metric_main.detector_call(m).items()) for m in uses[url]}
                    detectors.check_calls(detector, url, resolution, [dict(call) for call in sorted(calls)])
        except detectors.DetectorUnavailableError as err:
            raise click.UsageError(f"{flag}: {err}") from None
        except ValueError as err:  # Unreadable or untrusted file, unfit module, unknown input size for clean.
            raise click.UsageError(f"{flag}: {err}") from None


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
