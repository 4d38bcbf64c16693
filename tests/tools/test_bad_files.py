"""Every file a user can hand to an entry point, hostile or corrupt, ends in one error line and runs no code."""

import os
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip
from test_generate import save_tiny_network

import calc_metrics
import generate
import projector
import style_mixing
import train

MARKER = "BAD_FILE_RAN_CODE"


class _Hostile:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


KINDS = ["empty", "html", "text", "truncated", "hostile pickle", "hostile torch file", "folder", "missing"]

# (entry point, its arguments around the bad file F, the file's suffix); W = a work folder with good files.
ENTRIES = {
    "train --data": (train.main, "--outdir=W/runs --data=F --cfg=tiny --device=cpu --dry-run", ".zip"),
    "train --resume=PKL": (train.main, "--outdir=W/runs --data=W/d.zip --resume=F --cfg=tiny --dry-run", ".pkl"),
    "train --resume=STATE": (train.main, "--outdir=W/runs --resume=F --dry-run", ".pt"),
    "train --metric-detector": (
        train.main,
        "--outdir=W/runs --data=W/d.zip --metrics=fid50k_full --metric-detector=F --cfg=tiny --dry-run",
        ".pt",
    ),
    "train --metric-data": (
        train.main,
        "--outdir=W/runs --data=W/d.zip --metrics=fid50k_full --metric-data=F --cfg=tiny --dry-run",
        ".zip",
    ),
    "calc_metrics --network": (calc_metrics.calc_metrics, "--network=F --metrics=fid50k_full", ".pkl"),
    "calc_metrics --data": (calc_metrics.calc_metrics, "--network=W/net.pkl --data=F --metrics=fid50k_full", ".zip"),
    "calc_metrics --detector": (
        calc_metrics.calc_metrics,
        "--network=W/net.pkl --data=W/d.zip --detector=F --metrics=fid50k_full",
        ".pt",
    ),
    "generate --network": (generate.generate_images, "--network=F --seeds=0 --outdir=W/g --device=cpu", ".pkl"),
    "generate --projected-w": (
        generate.generate_images,
        "--network=W/net.pkl --projected-w=F --outdir=W/g --device=cpu",
        ".npz",
    ),
    "projector --network": (projector.main, "--network=F --target=W/t.png --outdir=W/p --device=cpu", ".pkl"),
    "projector --target": (projector.main, "--network=W/net.pkl --target=F --outdir=W/p --device=cpu", ".png"),
    "projector --vgg": (
        projector.main,
        "--network=W/net.pkl --target=W/t.png --vgg=F --outdir=W/p --device=cpu --num-steps=1",
        ".pt",
    ),
    "style_mixing --network": (
        style_mixing.main,
        "--network=F --rows=0 --cols=1 --outdir=W/s --device=cpu",
        ".pkl",
    ),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_files")
    make_image_zip(root / "d.zip")
    save_tiny_network(root / "net.pkl")
    PIL.Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "t.png")
    return root


def _bad_file(root, kind, suffix):
    path = root / f"bad-{kind.replace(' ', '-')}{suffix}"
    if kind == "folder":
        path.mkdir(exist_ok=True)
    elif kind == "hostile torch file":
        torch.save({"weights": _Hostile()}, path)
    elif kind != "missing":
        good = (root / "net.pkl").read_bytes()
        content = {"empty": b"", "html": b"<html><body>404 Not Found</body></html>", "text": b"just text\n"}
        path.write_bytes(
            content.get(kind) or (good[: len(good) // 2] if kind == "truncated" else pickle.dumps(_Hostile()))
        )
    return path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_bad_file_is_one_line_and_runs_nothing(work, entry, kind, monkeypatch):
    monkeypatch.chdir(work)
    command, args, suffix = ENTRIES[entry]
    bad = _bad_file(work, kind, suffix)
    result = CliRunner().invoke(command, args.replace("W/", f"{work}/").replace("=F", f"={bad}").split())
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code != 0 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert not (work / MARKER).exists()
