"""dnnlib.atomic: all-or-nothing writes, temp-file naming and cleanup."""

import errno
import os

import numpy as np
import pytest

from dnnlib import atomic


def test_write_text_replaces_whole_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic.write_text(path, "old")
    atomic.write_text(path, "new contents")
    assert path.read_text() == "new contents"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_error_inside_block_keeps_old_file_and_removes_temp(tmp_path):
    path = tmp_path / "a.bin"
    atomic.write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(path) as f:
            f.write(b"partial")
            raise RuntimeError("writer failed")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_atomic_path_with_suffix_for_extension_picking_writers(tmp_path):
    path = tmp_path / "arrays.npz"
    with atomic.atomic_path(path, suffix=".npz") as tmp:
        assert tmp.endswith(".npz") and atomic.is_temp_name(tmp)
        np.savez(tmp, x=np.arange(3))
    assert np.array_equal(np.load(path)["x"], np.arange(3))
    assert os.listdir(tmp_path) == ["arrays.npz"]


def test_atomic_path_writes_and_replaces_a_folder(tmp_path):
    dest = tmp_path / "out"
    for text in ("one", "two"):
        with atomic.atomic_path(dest) as tmp:
            os.makedirs(tmp)
            with open(os.path.join(tmp, "f.txt"), "w") as f:
                f.write(text)
    assert (dest / "f.txt").read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_writer_that_creates_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic.atomic_path(tmp_path / "x"):
            pass
    assert not (tmp_path / "x").exists()


def test_temp_names_are_recognised_and_cleaned(tmp_path):
    left = [
        atomic.temp_path_for(tmp_path / "network-snapshot-000004.pkl"),
        atomic.temp_path_for(tmp_path / "fakes.png", suffix=".png"),
    ]
    for p in left:
        open(p, "wb").close()
    os.makedirs(atomic.temp_path_for(tmp_path / "dataset.zip"))
    keep = ["network-snapshot-000004.pkl", "log.txt", ".hidden", "x.tmp-1"]
    for name in keep:
        open(tmp_path / name, "wb").close()
    removed = atomic.remove_temp_files(tmp_path)
    assert len(removed) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


def test_describe_write_error_names_full_disk():
    line = atomic.describe_write_error("/runs/x.pt", OSError(errno.ENOSPC, "No space left on device"))
    assert "no space left on device" in line and "/runs/x.pt" in line
    line = atomic.describe_write_error(
        "/runs/x.pt", RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos")
    )
    assert "no space left on device" in line
