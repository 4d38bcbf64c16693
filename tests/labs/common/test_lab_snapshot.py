"""labs/common/snapshot.py: a lab run's state round-trips, and every bad snapshot file ends in one line, running nothing."""

import dataclasses
import os
import pickle
import subprocess
import sys

import click
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip

from labs.common.snapshot import LabSnapshot, load_snapshot
from labs.dcgan import cli as dcgan
from tests.conftest import REPO_ROOT
from training.report_runs import read_lab_folder

REPO = REPO_ROOT


@dataclasses.dataclass
class Config:
    width: int = 3


class Run(LabSnapshot):
    STATEFUL = ("net", "opt")
    VALUES = {"steps": int}

    def __init__(self, width: int = 3):
        self.cfg = Config(width)
        self.net = torch.nn.Linear(width, 2)
        self.opt = torch.optim.Adam(self.net.parameters())
        self.steps = 0


class Hostile:
    def __reduce__(self):
        return (os.system, ("touch HOSTILE_MARKER",))


def test_round_trip(tmp_path):
    run = Run()
    run.steps = 5
    run.save(str(tmp_path / "snapshot.pt"))
    other = Run()
    other.load_state_dict(load_snapshot(str(tmp_path / "snapshot.pt"), Config))
    assert other.steps == 5 and torch.equal(other.net.weight, run.net.weight)


def _bad_files(tmp_path):
    good = tmp_path / "good.pt"
    Run().save(str(good))
    data = good.read_bytes()
    files = {
        "empty": b"",
        "html": b"<html><body>404 Not Found</body></html>",
        "truncated": data[: len(data) // 2],
        "hostile pickle": pickle.dumps(Hostile()),
    }
    for name, obj in {"a list": [1, 2], "no config": {"rng": {}}, "no rng": {"config": {}}}.items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        files[name] = path.read_bytes()
    return files


def test_bad_files_are_one_line_and_run_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, content in _bad_files(tmp_path).items():
        path = tmp_path / "snapshot.pt"
        path.write_bytes(content)
        with pytest.raises(click.UsageError) as info:
            load_snapshot(str(path))
        message = info.value.format_message()
        assert "\n" not in message and f"{path} is not a lab snapshot" in message, (name, message)
    assert not (tmp_path / "HOSTILE_MARKER").exists()


def test_another_labs_snapshot_is_refused_by_its_config(tmp_path):
    run = Run()
    state = run.state_dict()
    state["config"] = dict(objective="ns", kimg=1.0)
    torch.save(state, tmp_path / "snapshot.pt")
    with pytest.raises(click.UsageError, match=r"configuration has fields this lab does not know \(kimg, objective\)"):
        load_snapshot(str(tmp_path / "snapshot.pt"), Config)


@pytest.mark.parametrize("change", ["missing part", "other shapes", "bad rng"])
def test_a_state_that_does_not_fit_is_one_line(tmp_path, change):
    state = Run().state_dict()
    if change == "missing part":
        del state["opt"]
    elif change == "other shapes":
        state = Run(width=5).state_dict()
    else:
        state["rng"]["torch_cpu"] = torch.zeros(3)
    with pytest.raises(ValueError) as info:
        Run().load_state_dict(state)
    assert "\n" not in str(info.value) and "snapshot" in str(info.value), str(info.value)


def test_dcgan_lab_resume_on_a_corrupt_snapshot_is_one_line(tmp_path):
    data = make_image_zip(tmp_path / "d.zip", num_images=8, resolution=32)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "snapshot.pt").write_bytes(b"\x80\x04garbage")
    result = CliRunner().invoke(dcgan.main, ["--data", str(data), "--outdir", str(tmp_path / "run"), "--resume"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "is not a lab snapshot" in errors[0], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("lab", ["dcgan", "ssl"])
def test_a_lab_refuses_another_labs_snapshot_in_one_line(tmp_path, lab):
    """Each lab's --resume checks the snapshot's configuration against its own config dataclass."""
    from labs.dcgan.train import RunConfig
    from labs.ssl import cli as ssl
    from labs.ssl.train import SSLConfig

    other = SSLConfig if lab == "dcgan" else RunConfig
    state = Run().state_dict()
    state["config"] = {field.name: 0 for field in dataclasses.fields(other)}
    (tmp_path / "run").mkdir()
    torch.save(state, tmp_path / "run" / "snapshot.pt")
    data = make_image_zip(tmp_path / "d.zip", num_images=8, resolution=32)
    args = ["--data", str(data), "--outdir", str(tmp_path / "run"), "--resume"]
    main = dcgan.main if lab == "dcgan" else ssl.main
    result = CliRunner().invoke(main, args + (["--test-data", str(data)] if lab == "ssl" else []))
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "configuration has fields this lab does not know" in errors[0] and "Traceback" not in result.output


def test_the_reports_read_a_snapshots_config_without_lab_code(tmp_path, monkeypatch):
    """training.report_runs reads the config of a snapshot LabSnapshot wrote, and notes in one line, running
    nothing, a snapshot it cannot read; it imports no module of labs/ to do so (training sits below labs)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.jsonl").write_text('{"kimg": 1, "fid": 10.0}\n')
    Run(width=5).save(str(folder / "snapshot.pt"))
    (run,) = read_lab_folder(str(folder))
    assert run.options == {"width": 5, "pack": 1, "stack": 1} and run.notes == []  # pack, stack: added since.
    monkeypatch.chdir(tmp_path)
    for name, content in _bad_files(tmp_path).items():
        if name == "no rng":  # It holds a config, all the reports read.
            continue
        (folder / "snapshot.pt").write_bytes(content)
        (run,) = read_lab_folder(str(folder))
        assert run.options == {} and len(run.notes) == 1, (name, run.notes)
        assert "could not read its config" in run.notes[0] and "\n" not in run.notes[0], (name, run.notes)
    assert not (tmp_path / "HOSTILE_MARKER").exists()
    Run(width=5).save(str(folder / "snapshot.pt"))
    code = (
        "import sys; from training.report_runs import read_lab_folder; "
        f"assert read_lab_folder({str(folder)!r})[0].options == {{'width': 5, 'pack': 1, 'stack': 1}}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'labs'))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "[]", loaded.stdout
