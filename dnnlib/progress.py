"""A dependency-free progress bar for long loops (dataset conversion, feature extraction, long ticks)."""

from __future__ import annotations

import sys
import time
from typing import IO

from .util import format_time


class ProgressBar:
    """`desc [#######.....] 700/1000 70% 123.4/s eta 3s`, redrawn in place on a terminal.

    On a non-terminal stream (a log file, CI) it stays silent unless `enabled=True`, so logs are not
    flooded with redraws. Use as a context manager, call `update(n)` as work completes.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        min_interval: float = 0.25,
        width: int = 30,
        unit: str = "it",
    ):
        self.total = total
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled if enabled is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self.width = width
        self.unit = unit
        self.count = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.count / elapsed
        parts = [self.desc] if self.desc else []
        if self.total:
            frac = min(self.count / self.total, 1.0)
            filled = int(round(frac * self.width))
            parts.append("[" + "#" * filled + "." * (self.width - filled) + "]")
            parts.append(f"{self.count}/{self.total} {frac * 100:3.0f}%")
        else:
            parts.append(f"{self.count}")
        parts.append(f"{rate:.1f} {self.unit}/s")
        if self.total and rate > 0 and self.count < self.total:
            parts.append(f"eta {format_time((self.total - self.count) / rate)}")
        return " ".join(parts)

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw >= self.min_interval or (self.total and self.count >= self.total)):
            self._last_draw = now
            self.stream.write("\r" + self.render() + "\033[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.render() + "\033[K\n")
            self.stream.flush()
            self.enabled = False
