"""torch_utils.custom_ops.get_plugin: forced reference path, failures warn once and return None, no lock hangs."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT
from torch_utils import custom_ops

REPO = REPO_ROOT
GOOD_SOURCE = """
#include <pybind11/pybind11.h>
static int add_one(int x) { return x + 1; }
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("add_one", &add_one); }
"""


def unique_name() -> str:
    return f"test_{uuid.uuid4().hex[:8]}_plugin"


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "extensions"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(root))
    monkeypatch.delenv(custom_ops.REFERENCE_ENV, raising=False)
    return root


def output_lines(capfd) -> list[str]:
    captured = capfd.readouterr()
    return [line for line in (captured.out + captured.err).splitlines() if line.strip()]


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_reference_env_forces_none_without_building(cache_root, monkeypatch, capfd, value):
    monkeypatch.setenv(custom_ops.REFERENCE_ENV, value)
    assert custom_ops.reference_forced()
    assert custom_ops.get_plugin(unique_name(), sources=["does_not_exist.cpp"]) is None
    assert output_lines(capfd) == []
    assert not cache_root.exists()


@pytest.mark.slow
def test_failing_build_warns_once_and_returns_none(cache_root, tmp_path, capfd):
    (tmp_path / "bad.cpp").write_text("#include <pybind11/pybind11.h>\nthis is not C++;\n")
    name = unique_name()
    assert custom_ops.get_plugin(name, sources=["bad.cpp"], source_dir=str(tmp_path)) is None
    assert custom_ops.get_plugin(name, sources=["bad.cpp"], source_dir=str(tmp_path)) is None  # cached failure
    lines = output_lines(capfd)
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING") and name in lines[0] and "error" in lines[0]
    assert [p for p in cache_root.iterdir()] == []  # the failed temporary build folder is removed


def test_missing_source_warns_and_returns_none(cache_root, capfd):
    name = unique_name()
    assert custom_ops.get_plugin(name, sources=["missing.cpp"], source_dir=str(cache_root)) is None
    lines = output_lines(capfd)
    assert len(lines) == 1 and "missing.cpp" in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA failure")
def test_cuda_source_without_cuda_warns_and_returns_none(cache_root, tmp_path, capfd):
    (tmp_path / "k.cu").write_text("__global__ void k() {}\n")
    assert custom_ops.get_plugin(unique_name(), sources=["k.cu"], source_dir=str(tmp_path)) is None
    lines = output_lines(capfd)
    assert len(lines) == 1 and "CUDA is not available" in lines[0]


def test_cache_key_depends_on_source_and_flags(tmp_path):
    source = tmp_path / "a.cpp"
    source.write_text("int a;")
    first = custom_ops._digest("m", [str(source)], {})
    assert custom_ops._digest("m", [str(source)], {"extra_cflags": ["-O3"]}) != first
    source.write_text("int b;")
    assert custom_ops._digest("m", [str(source)], {}) != first


def run_loader(name: str, source_dir: Path, root: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        from torch_utils import custom_ops
        plugin = custom_ops.get_plugin({name!r}, sources=["good.cpp"], source_dir={str(source_dir)!r})
        print(plugin.add_one(41))
        """
    )
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(root), PYTHONPATH=str(REPO))
    env.pop(custom_ops.REFERENCE_ENV, None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_build_ignores_stale_locks_and_reuses_the_cache(cache_root, tmp_path):
    (tmp_path / "good.cpp").write_text(GOOD_SOURCE)
    name = unique_name()
    # Leftovers of interrupted builds: PyTorch's own lock layout and one of our temporary build folders.
    for folder in (cache_root / name, cache_root / f".{name}-build-dead"):
        folder.mkdir(parents=True)
        (folder / "lock").write_text("")
    first = run_loader(name, tmp_path, cache_root)  # the timeout turns a hang into a failure
    assert first.returncode == 0 and first.stdout.split() == ["42"], first.stderr
    libraries = list(cache_root.glob(f"{name}-*/{name}.so"))
    assert len(libraries) == 1
    stamp = libraries[0].stat().st_mtime_ns
    second = run_loader(name, tmp_path, cache_root)
    assert second.returncode == 0 and second.stdout.split() == ["42"], second.stderr
    assert libraries[0].stat().st_mtime_ns == stamp  # loaded from the cache, not rebuilt
    assert sorted(p.name for p in cache_root.glob(f".{name}-build-*")) == [f".{name}-build-dead"]
