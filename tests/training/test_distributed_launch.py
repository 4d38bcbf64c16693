"""The one device resolver and the one process launcher (training/distributed.py) used by the three CLIs."""

import json
import os
import socket

import pytest
import torch
import torch.distributed
from click.testing import CliRunner

import train
from dnnlib.cli import OptionError
from training import distributed, generator_io


def test_resolve_device_auto_follows_cuda_availability():
    assert distributed.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert distributed.resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when no CUDA device is present")
def test_resolve_device_cuda_without_gpu_names_the_fix():
    with pytest.raises(ValueError, match=r"no CUDA device is available; use --device=cpu"):
        distributed.resolve_device("cuda")


def test_resolve_device_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        distributed.resolve_device("tpu")


def test_the_clis_share_the_resolver(monkeypatch):
    """generate.py (projector.py, style_mixing.py: training.generator_io), train.py and calc_metrics.py all go
    through distributed.resolve_device."""
    calls = []

    def fake(name):
        calls.append(name)
        raise ValueError("stand-in failure")

    monkeypatch.setattr(distributed, "resolve_device", fake)
    with pytest.raises(OptionError, match=r"--device=cpu: stand-in failure"):
        generator_io.resolve_device("cpu")
    result = CliRunner().invoke(train.main, ["--outdir=x", "--data=y", "--device=auto", "--dry-run"])
    assert result.exit_code == 2 and "--device=auto: stand-in failure" in result.output
    assert calls == ["cpu", "auto"]


def test_process_device_cpu_ignores_rank():
    assert distributed.process_device("cpu", 3) == torch.device("cpu")


def test_torchrun_rank_reads_the_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.torchrun_rank() is None
    monkeypatch.setenv("RANK", "3")
    assert distributed.torchrun_rank() is None  # RANK alone is not torchrun.
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.torchrun_rank() == 3


def _record(rank: int, out_dir: str) -> None:
    """Write what this process sees: its rank, whether a group exists, the world size and an all-reduced sum."""
    total = torch.tensor([float(rank + 1)])
    if distributed.is_distributed():
        torch.distributed.all_reduce(total)
    info = dict(
        rank=rank,
        grouped=distributed.is_distributed(),
        world=distributed.world_size(),
        total=total.item(),
        pid=os.getpid(),
    )
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(info, f)


def _read(out_dir, rank):
    with open(os.path.join(out_dir, f"rank{rank}.json"), encoding="utf-8") as f:
        return json.load(f)


def test_launch_one_process_runs_in_process_without_a_group(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    distributed.launch(_record, str(tmp_path), 1, "cpu")
    info = _read(tmp_path, 0)
    assert info == dict(rank=0, grouped=False, world=1, total=1.0, pid=os.getpid())


@pytest.mark.slow
def test_launch_two_processes_join_one_gloo_group(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    distributed.launch(_record, str(tmp_path), 2, "cpu")
    infos = [_read(tmp_path, r) for r in range(2)]
    assert [i["rank"] for i in infos] == [0, 1]
    assert all(i["grouped"] and i["world"] == 2 and i["total"] == 3.0 for i in infos)  # 1 + 2 summed over ranks.
    assert all(i["pid"] != os.getpid() for i in infos)
    assert not distributed.is_distributed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launch_under_torchrun_joins_through_env_and_checks_the_world_size(tmp_path, monkeypatch):
    for name, value in dict(
        RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())
    ).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="2 processes requested but torchrun started 1"):
        distributed.launch(_record, str(tmp_path), 2, "cpu")
    distributed.launch(_record, str(tmp_path), 1, "cpu")
    assert _read(tmp_path, 0) == dict(rank=0, grouped=False, world=1, total=1.0, pid=os.getpid())
    assert not distributed.is_distributed()
