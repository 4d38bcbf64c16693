"""Seed lists on the command line: '0-3,7' -> [0, 1, 2, 3, 7], for every script and lab that takes seeds."""

from __future__ import annotations

import re

import click

MAX_SEEDS = 1_000_000  # Seeds per list: a typo such as 0-9999999999 must not start a run of a billion images.


def parse_range(text: str) -> list[int]:
    """Parse a seed list like '0-3,7' into [0, 1, 2, 3, 7] (ranges are inclusive).

    Seeds must be below 2**32 and number at most MAX_SEEDS; both are checked before any range is expanded.
    Raises ValueError with a one-line message naming the bad part.
    """
    ranges = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)-(\d+)", part) or re.fullmatch(r"(\d+)()", part)
        if match is None:
            raise ValueError(f"{part!r} is not a seed or a range; use e.g. '0-3,7'")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if lo > hi:
            raise ValueError(f"empty range {part!r}: write it low-high")
        if hi >= 2**32:
            raise ValueError(f"seeds must be below 2**32, got {hi} in {part!r}")
        ranges.append((lo, hi))
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ValueError(f"{count} seeds requested; at most {MAX_SEEDS} per call: split the range")
    return [seed for lo, hi in ranges for seed in range(lo, hi + 1)]


class SeedList(click.ParamType):
    """click parameter type for `parse_range` lists (a bad list is a one-line usage error)."""

    name = "seeds"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return parse_range(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
