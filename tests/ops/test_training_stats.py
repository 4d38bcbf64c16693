"""training_stats: moments against numpy, collector deltas, keep_previous, and a 2-process gloo reduction."""

import numpy as np
import pytest
import torch
import torch.distributed
import torch.multiprocessing

from torch_utils import training_stats


def test_collector_mean_std_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=1000)
    collector = training_stats.Collector(regex=r"Test/a")
    training_stats.report("Test/a", torch.tensor(values[:600]))
    training_stats.report("Test/a", values[600:].tolist())
    training_stats.report("Test/b", 1.0)
    collector.update()
    assert collector.num("Test/a") == 1000
    assert collector.mean("Test/a") == pytest.approx(values.astype(np.float32).mean(), rel=1e-6)
    assert collector.std("Test/a") == pytest.approx(values.astype(np.float32).std(), rel=1e-5)
    assert collector.names() == ["Test/a"]


def test_collector_deltas_keep_previous_and_independence():
    first = training_stats.Collector(regex=r"Test/c")
    training_stats.report("Test/c", [1.0, 3.0])
    first.update()
    second = training_stats.Collector(regex=r"Test/c")  # Sees only what comes after its creation.
    training_stats.report("Test/c", [10.0])
    first.update()
    assert first.mean("Test/c") == 10.0 and first.std("Test/c") == 0.0
    first.update()  # No new data: keep_previous keeps the last interval.
    assert first.mean("Test/c") == 10.0
    second.update()
    assert second.num("Test/c") == 1 and second.mean("Test/c") == 10.0
    fresh = training_stats.Collector(regex=r"Test/c", keep_previous=False)
    fresh.update()
    assert fresh.num("Test/c") == 0 and np.isnan(fresh.mean("Test/c"))


def test_report_empty_registers_name_and_as_dict_order():
    collector = training_stats.Collector(regex=r"Order/.*")
    training_stats.report("Order/z", [])
    training_stats.report("Order/a", 2.0)
    collector.update()
    stats = collector.as_dict()
    assert list(stats) == ["Order/z", "Order/a"]
    assert stats["Order/a"] == dict(num=1.0, mean=2.0, std=0.0)
    assert np.isnan(stats["Order/z"]["mean"])


def _worker(rank, init_file, result_file):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    training_stats.init_multiprocessing(rank=rank, sync_device=torch.device("cpu"))
    collector = training_stats.Collector(regex=r"Dist/.*")
    training_stats.report("Dist/x", [float(rank + 1)] * (rank + 1))  # rank 0: [1], rank 1: [2, 2]
    training_stats.report0("Dist/only0", 7.0)
    collector.update()
    if rank == 0:
        stats = collector.as_dict()
        np.save(result_file, [stats["Dist/x"]["num"], stats["Dist/x"]["mean"], stats["Dist/only0"]["num"]])
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_collector_reduces_across_gloo_ranks(tmp_path):
    result = tmp_path / "result.npy"
    torch.multiprocessing.spawn(_worker, args=(str(tmp_path / "init"), str(result)), nprocs=2)
    num, mean, only0 = np.load(result)
    assert num == 3 and mean == pytest.approx(5.0 / 3.0) and only0 == 1
