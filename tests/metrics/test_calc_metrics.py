"""End to end: calc_metrics.py on a tiny network, a tiny labelled dataset and a small domain detector."""

import glob
import json
import math

import pytest
import torch
from click.testing import CliRunner
from test_metrics_domain_detector import write_labelled_image_folder

import calc_metrics
from metrics import domain_detector
from training.checkpoint import save_network_pkl
from training.networks import Discriminator, Generator

RESOLUTION = 8
DATASET_CLASS = "training.dataset.ImageFolderDataset"


def _snapshot(data_path: str | None) -> dict:
    torch.manual_seed(0)
    G = Generator(
        8, 2, 8, RESOLUTION, 1, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8)
    )
    D = Discriminator(2, RESOLUTION, 1, channel_base=64, channel_max=8, mapping_kwargs=dict(num_layers=2))
    training_set_kwargs = None
    if data_path is not None:
        training_set_kwargs = dict(
            class_name=DATASET_CLASS, path=data_path, use_labels=True, max_size=None, xflip=False, resolution=RESOLUTION
        )
    return dict(training_set_kwargs=training_set_kwargs, G=G.eval(), D=D.eval(), G_ema=G.eval(), augment_pipe=None)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("calc_metrics")
    data = str(root / "data")
    write_labelled_image_folder(data, num_images=40, resolution=RESOLUTION)
    detector = str(root / "det.pt")
    result = CliRunner().invoke(
        domain_detector.main,
        [f"--data={data}", f"--out={detector}", "--epochs=2", "--batch=8", "--channels=4,8", "--hidden=8"],
    )
    assert result.exit_code == 0, result.output
    run_dir = root / "00000-run"
    run_dir.mkdir()
    (run_dir / "training_options.json").write_text("{}")
    network = str(run_dir / "network-snapshot-000000.pkl")
    save_network_pkl(network, _snapshot(data))
    return dict(root=root, data=data, detector=detector, run_dir=run_dir, network=network)


def _invoke(*args: str):
    return CliRunner().invoke(calc_metrics.calc_metrics, list(args))


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 24 samples of tiny features: singular covariances.
def test_all_metric_kinds_run_offline_with_a_domain_detector(setup, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(setup["root"] / "cache"))
    metrics = "fid50k_full,kid50k_full,pr50k3_full,is50k,conf10k,ppl2_wend"
    args = [
        f"--network={setup['network']}",
        f"--metrics={metrics}",
        f"--detector={setup['detector']}",
        "--num-images=24",
    ]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Calculating fid50k_full..." in result.output and "Exiting..." in result.output
    assert "dataset features" in result.output and "generator features" in result.output

    records = {}
    for metric in metrics.split(","):
        lines = (setup["run_dir"] / f"metric-{metric}.jsonl").read_text().splitlines()
        assert len(lines) == 1
        records[metric] = json.loads(lines[0])
        used = {"ppl2_wend": ["detector", "num_gen"], "is50k": ["detector", "num_gen", "resize"]}.get(
            metric, ["detector", "num_real", "num_gen", "resize", "real_data"]
        )
        assert list(records[metric]) == [
            "results",
            "metric",
            "total_time",
            "total_time_str",
            "num_gpus",
            *used,
            "num_images",
            "snapshot_pkl",
            "timestamp",
        ]
        assert records[metric]["detector"] == "det.pt" and records[metric]["num_gen"] == 24
        assert records[metric]["snapshot_pkl"] == "network-snapshot-000000.pkl"
        assert records[metric]["num_images"] == 24
        assert records[metric].get("real_data", "data") == "data"  # The snapshot's training set (folder "data").
        assert all(math.isfinite(v) for v in records[metric]["results"].values())
    assert records["fid50k_full"]["results"]["fid50k_full"] > 0  # An untrained G is far from the data.
    pr = records["pr50k3_full"]["results"]
    assert 0 <= pr["pr50k3_full_precision"] <= 1 and 0 <= pr["pr50k3_full_recall"] <= 1
    is_result = records["is50k"]["results"]
    assert 1 <= is_result["is50k_mean"] <= 2 and is_result["is50k_std"] >= 0  # Two classes: IS in [1, 2].
    conf = records["conf10k"]["results"]
    assert 0.5 <= conf["conf10k_gen"] <= 1 and 0.5 <= conf["conf10k_real"] <= 1  # Two classes: max p >= 1/2.
    assert conf["conf10k_ratio"] == pytest.approx(conf["conf10k_gen"] / conf["conf10k_real"])
    assert conf["conf10k_classes"] in (1, 2) and 0 <= conf["conf10k_minshare"] <= 0.5
    assert records["ppl2_wend"]["results"]["ppl2_wend"] > 0
    cached = glob.glob(str(setup["root"] / "cache" / "gan-metrics" / "data-det-*.npz"))
    # FID keeps mean/cov; KID and PR keep all features of the same detector call (one shared file); conf10k
    # keeps the real images' class probabilities; IS and PPL use no real images.
    assert len(cached) == 3

    # A second run reuses the cached statistics and appends a line.
    result = _invoke(*args[:1], "--metrics=fid50k_full", *args[2:], "--verbose=False")
    assert result.exit_code == 0, result.output
    assert "dataset features" not in result.output
    assert len((setup["run_dir"] / "metric-fid50k_full.jsonl").read_text().splitlines()) == 2
    assert len(glob.glob(str(setup["root"] / "cache" / "gan-metrics" / "*.npz"))) == 3


def test_unknown_metric_lists_valid_names(setup):
    result = _invoke(f"--network={setup['network']}", "--metrics=fid50k_full,fid")
    assert result.exit_code == 2
    assert "--metrics: unknown metric 'fid'" in result.output
    assert "--metrics can only contain the following values:" in result.output
    assert "ppl_wend" in result.output


def test_missing_network_and_data_are_usage_errors(setup):
    result = _invoke(f"--network={setup['root'] / 'missing.pkl'}")
    assert result.exit_code == 2 and "--network must point to a file or URL" in result.output
    result = _invoke(f"--network={setup['network']}", f"--data={setup['root'] / 'missing.zip'}", "--metrics=none")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_snapshot_without_dataset_needs_data(setup):
    network = str(setup["root"] / "no-dataset.pkl")
    save_network_pkl(network, _snapshot(None))
    result = _invoke(f"--network={network}", "--metrics=none")
    assert result.exit_code == 2 and "Could not look up dataset options; please specify --data" in result.output


@pytest.mark.parametrize(
    "resolution, channels, message", [(16, 1, "16x16 with 1 channel"), (8, 3, "8x8 with 3 channel")]
)
def test_mismatched_dataset_is_a_usage_error(setup, tmp_path, resolution, channels, message):
    data = str(tmp_path / "other")
    write_labelled_image_folder(data, num_images=4, resolution=resolution, channels=channels)
    result = _invoke(f"--network={setup['network']}", f"--data={data}", "--metrics=none")
    assert result.exit_code == 2
    assert message in result.output and "network makes 8x8 with 1" in result.output


@pytest.mark.parametrize("content", [b"", b"<html>Not Found</html>", b"plain text\n", b"\x80\x04truncated"])
def test_bad_network_file_is_one_line(setup, tmp_path, content):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(content)
    result = _invoke(f"--network={bad}", "--metrics=none")
    assert result.exit_code == 1 and f'cannot load network "{bad}"' in result.output, result.output
    assert "Traceback" not in result.output


def test_offline_without_the_detector_is_one_line_before_any_work(setup, tmp_path, monkeypatch):
    from dnnlib import util

    monkeypatch.setenv(util.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv("GAN_DETECTOR_DIR", raising=False)

    def offline(url, num_attempts, verbose):
        raise util.DownloadError("network unreachable")

    monkeypatch.setattr(util, "_download", offline)
    result = _invoke(f"--network={setup['network']}", "--metrics=kid50k_full")
    assert result.exit_code == 2 and 'Detector "inception-2015-12-05.pt" is not available' in result.output
    assert "Launching processes" not in result.output and "Traceback" not in result.output


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # TorchScript detectors still load.
def test_clean_resize_with_a_detector_of_unknown_input_size_is_one_line_before_any_work(setup, tmp_path):
    class Features(torch.nn.Module):  # A TorchScript detector whose name says nothing about its input size.
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.float().flatten(1)[:, :4]

    detector = str(tmp_path / "my-features.pt")
    torch.jit.script(Features()).save(detector)
    result = _invoke(
        f"--network={setup['network']}",
        "--metrics=fid50k_full",
        f"--detector={detector}",
        "--resize=clean",
        f"--trust-detector={detector}",
    )
    assert result.exit_code == 2 and "input size" in result.output and "--resize=legacy" in result.output
    assert "Launching processes" not in result.output and "Traceback" not in result.output


class _OtherArguments(torch.nn.Module):  # A TorchScript module that is no detector: forward takes other arguments.
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().flatten(1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize("kind", ["not a detector", "untrusted TorchScript", "other arguments"])
def test_a_bad_detector_file_is_one_line_before_any_work(setup, tmp_path, monkeypatch, kind):
    monkeypatch.delenv("GAN_TRUSTED_DETECTORS", raising=False)
    detector = str(tmp_path / "det.pt")
    trust = []
    if kind == "not a detector":
        torch.save({"weight": torch.zeros(2)}, detector)
        expected = "is not a detector file"
    else:
        torch.jit.script(_OtherArguments()).save(detector)
        if kind == "other arguments":
            trust = [f"--trust-detector={detector}"]
            expected = "fails the metrics' call detector(images, return_features=True)"
        else:
            expected = f"is a TorchScript detector: its graph is code that runs when it is used, so it loads only when trusted; if you trust it, pass --trust-detector={detector}"
    result = _invoke(f"--network={setup['network']}", "--metrics=fid50k_full", f"--detector={detector}", *trust)
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and expected in errors[0], result.output
    assert errors[0].startswith("Error: --detector:")
    assert "Launching processes" not in result.output and "Traceback" not in result.output
