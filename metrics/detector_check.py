"""Every metric's detector checked before a run or an evaluation starts, so a problem is one line now instead of
a traceback inside the metric's process at the first snapshot (train.py, calc_metrics.py)."""

from __future__ import annotations

from dnnlib.cli import OptionError
from metrics import detectors, metric_main


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
    size. `kwargs` holds `detector` (replaces every metric's own) and `detector_dir`; `detector_flag` names the
    option that gave `kwargs['detector']`. Raises `dnnlib.cli.OptionError` naming that option or --metrics.
    """
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
        # DetectorUnavailableError: not found; ValueError: unreadable or untrusted file, unfit module, or (clean)
        # an unknown input size.
        except (detectors.DetectorUnavailableError, ValueError) as err:
            raise OptionError(f"{flag}: {err}") from None
