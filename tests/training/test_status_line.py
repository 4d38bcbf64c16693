"""The per-tick status line prints the statistics the loop recorded for the tick (the stats.jsonl values)."""

import re

import torch

from torch_utils import training_stats
from training.training_loop import status_line

TICK_STATS = {
    "Progress/tick": 7,
    "Progress/kimg": 12.0,
    "Timing/total_sec": 3725.0,
    "Timing/sec_per_tick": 90.0,
    "Timing/sec_per_kimg": 30.0,
    "Timing/maintenance_sec": 4.5,
    "Resources/cpu_mem_gb": 1.75,
    "Resources/peak_gpu_mem_gb": 3.25,
    "Progress/augment": 0.125,
}


def fields_of(line: str) -> dict[str, str]:
    """'name value name value ...' -> {name: value}; `time` and `eta` values may contain spaces."""
    pairs = re.findall(r"([a-zA-Z/]+) +(\d+[dhms](?: \d+[dhms])*|[-\d.]+)", line)
    return dict(pairs)


def collect(stats: dict[str, float]) -> training_stats.Collector:
    collector = training_stats.Collector(regex=".*")  # Sees only what is reported after this point.
    for name, value in stats.items():
        training_stats.report0(name, value)
    collector.update()
    return collector


def test_status_line_prints_the_recorded_tick_values():
    line = status_line(collect(TICK_STATS), total_kimg=20.0)
    fields = fields_of(line)
    assert fields["tick"] == "7" and fields["kimg"] == "12.0"
    assert fields["time"] == "1h 02m 05s"
    assert fields["sec/tick"] == "90.0" and fields["sec/kimg"] == "30.00" and fields["maintenance"] == "4.5"
    assert fields["cpumem"] == "1.75"
    # The recorded peak, not whatever torch.cuda reports now (after the loop has reset the peak counter).
    assert fields["gpumem"] == "3.25"
    assert fields["augment"] == "0.125"
    assert fields["eta"] == "4m 00s"  # (20 - 12) kimg x 30 s/kimg.
    assert "apa" not in fields and "lossG" not in fields


def test_status_line_adds_apa_and_losses_when_reported():
    stats = dict(TICK_STATS, **{"Progress/apa": 0.25})
    collector = training_stats.Collector(regex=".*")
    for name, value in stats.items():
        training_stats.report0(name, value)
    training_stats.report("Loss/G/loss", torch.tensor([1.0, 2.0]))
    training_stats.report("Loss/D/loss", torch.tensor([0.5]))
    collector.update()
    fields = fields_of(status_line(collector, total_kimg=12.0))
    assert fields["apa"] == "0.250" and fields["lossG"] == "1.500" and fields["lossD"] == "0.500"
    assert fields["eta"] == "0s"
