"""`train.py --metric-data`: the metrics' real statistics come from another dataset, and nothing else changes."""

import json
import os

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip
from test_metrics_domain_detector import write_labelled_image_folder
from test_train_resume import finished_run, run_copy  # noqa: F401 - fixtures used below.

import train
from dnnlib import util
from metrics import domain_classifier, formulas, metric_main, metric_utils
from training.networks import Generator

DATASET = "training.dataset.ImageFolderDataset"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A conditional 8x8 G, its labelled training folder, an unlabelled metric folder of other images, a detector."""
    root = tmp_path_factory.mktemp("metric_data")
    train_dir, metric_dir = str(root / "train"), str(root / "metric")
    write_labelled_image_folder(train_dir, num_images=12, seed=0)
    write_labelled_image_folder(metric_dir, num_images=10, seed=1)
    os.remove(os.path.join(metric_dir, "dataset.json"))  # No labels: the generated labels must not come from here.
    torch.manual_seed(0)
    model = domain_classifier.DomainClassifier(num_classes=2, in_channels=1, resolution=8, channels=(4, 6), hidden=6)
    detector = str(root / "det.pt")
    domain_classifier.save(model, detector, info={})
    G = Generator(
        8, 2, 8, 8, 1, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8)
    )
    return dict(train=train_dir, metric=metric_dir, detector=detector, G=G.eval().requires_grad_(False))


def _options(world, real=None, **kwargs):
    real_kwargs = dict(class_name=DATASET, path=world["metric"], max_size=None, xflip=False) if real else None
    return metric_utils.MetricOptions(
        G=world["G"],
        dataset_kwargs=dict(class_name=DATASET, path=world["train"], use_labels=True, max_size=None, xflip=False),
        real_dataset_kwargs=real_kwargs,
        device="cpu",
        detector=world["detector"],
        **kwargs,
    )


def _folder_features(world, path):
    """The detector on every PNG of a folder, read with PIL: features computed without the metric pipeline."""
    names = sorted(n for n in os.listdir(path) if n.endswith(".png"))
    gray = np.stack([np.asarray(PIL.Image.open(os.path.join(path, n))) for n in names])
    images = torch.from_numpy(np.repeat(gray[:, None], 3, axis=1))
    with torch.no_grad():
        return domain_classifier.load(world["detector"])(images, return_features=True).double().numpy()


def _real_stats(opts):
    return metric_utils.compute_feature_stats_for_dataset(
        opts, opts.detector, dict(return_features=True), data_loader_kwargs=dict(num_workers=0), capture_mean_cov=True
    )


def _gen_stats(opts):
    torch.manual_seed(3)
    np.random.seed(3)
    return metric_utils.compute_feature_stats_for_generator(
        opts, opts.detector, dict(return_features=True), capture_all=True, max_items=16, batch_size=8
    )


def test_metric_data_changes_the_real_statistics_and_nothing_else(world):
    plain, other = _options(world, cache=False), _options(world, real=True, cache=False)
    mean, cov = _real_stats(other).get_mean_cov()
    expected = _folder_features(world, world["metric"])
    np.testing.assert_allclose(mean, expected.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cov, np.cov(expected, rowvar=False, bias=True), rtol=1e-4, atol=1e-6)
    train_mean, _ = _real_stats(plain).get_mean_cov()
    np.testing.assert_allclose(train_mean, _folder_features(world, world["train"]).mean(axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(mean, train_mean)
    # The generated side is the same: same images, labels drawn from the training set (the metric set has none).
    np.testing.assert_array_equal(_gen_stats(plain).get_all(), _gen_stats(other).get_all())
    assert other.provenance.real_data == "metric" and plain.provenance.real_data == "train"


@pytest.mark.slow
def test_fid_against_the_metric_data_uses_its_statistics(world, monkeypatch):
    generated = []
    original = metric_utils.compute_feature_stats_for_generator
    monkeypatch.setattr(
        metric_utils,
        "compute_feature_stats_for_generator",
        lambda *a, **k: generated.append(original(*a, **k)) or generated[-1],
    )
    result = metric_main.calc_metric(
        "fid50k_full",
        G=world["G"],
        dataset_kwargs=_options(world).dataset_kwargs,
        real_dataset_kwargs=dict(class_name=DATASET, path=world["metric"], max_size=None, xflip=False),
        device="cpu",
        detector=world["detector"],
        num_images=16,
        cache=False,
    )
    real = _folder_features(world, world["metric"])
    gen_mean, gen_cov = generated[0].get_mean_cov()
    expected = formulas.fid_from_stats(real.mean(axis=0), np.cov(real, rowvar=False, bias=True), gen_mean, gen_cov)
    assert result.results.fid50k_full == pytest.approx(expected, rel=1e-4)
    assert result.num_real == 10 and result.num_gen == 16
    assert result.real_data == "metric" and "real images from metric" in metric_main.summary_line(result)


def test_metric_data_is_part_of_the_cache_key(world, tmp_path, monkeypatch):
    monkeypatch.setenv(util.CACHE_DIR_ENV, str(tmp_path / "cache"))
    _real_stats(_options(world))
    _real_stats(_options(world, real=True))
    _real_stats(_options(world, real=True))  # A hit: no third file.
    files = sorted(os.listdir(tmp_path / "cache" / "gan-metrics"))
    assert len(files) == 2 and files[0].startswith("metric-") and files[1].startswith("train-"), files


def _train(*args):
    return CliRunner().invoke(train.main, list(args))


def test_train_saves_and_checks_the_metric_data(tmp_path):
    data = make_image_zip(tmp_path / "train16.zip")
    held_out = make_image_zip(tmp_path / "test16.zip", num_images=8, seed=1)
    base = [f"--outdir={tmp_path / 'runs'}", f"--data={data}", "--cfg=tiny", "--device=cpu", "--dry-run"]
    result = _train(*base, "--metrics=none", f"--metric-data={held_out}")
    assert result.exit_code == 2 and "--metric-data needs --metrics" in result.output
    for bad, what in [
        (make_image_zip(tmp_path / "small.zip", resolution=8), "8x8 images with 3 channel(s)"),
        (make_image_zip(tmp_path / "gray.zip", channels=1), "16x16 images with 1 channel(s)"),
        (tmp_path / "missing.zip", "--metric-data:"),
    ]:
        result = _train(*base, "--metrics=fid50k_full", f"--metric-data={bad}")
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert result.exit_code == 2 and len(errors) == 1 and what in errors[0], result.output


def test_metric_data_is_saved_with_the_run(tmp_path, monkeypatch):
    data = make_image_zip(tmp_path / "train16.zip")
    held_out = make_image_zip(tmp_path / "test16.zip", num_images=8, seed=1)
    monkeypatch.setattr(train.detector_check, "check_detectors", lambda *args, **kwargs: None)  # Offline here.
    monkeypatch.setattr(train.distributed, "launch", lambda fn, args, n, device: None)
    args = [f"--outdir={tmp_path / 'runs'}", f"--data={data}", "--cfg=tiny", "--device=cpu", "--metrics=fid50k_full"]
    result = _train(*args, f"--metric-data={held_out}")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    saved = json.loads((run_dir / "training_options.json").read_text())
    real = saved["metric_kwargs"]["real_dataset_kwargs"]
    assert real["path"] == str(held_out) and real["resolution"] == 16 and not real["use_labels"] and not real["xflip"]
    assert saved["training_set_kwargs"]["path"] == str(data)


def test_metric_data_may_change_on_resume(run_copy, tmp_path, monkeypatch):
    run_dir, _data = run_copy
    held_out = make_image_zip(tmp_path / "test16.zip", num_images=8, seed=1)
    monkeypatch.setattr(train.detector_check, "check_detectors", lambda *args, **kwargs: None)
    calls = []
    monkeypatch.setattr(train.distributed, "launch", lambda fn, args, n, device: calls.append(args))
    before = json.loads((run_dir / "training_options.json").read_text())
    result = _train(f"--outdir={tmp_path}", f"--resume={run_dir}", "--metrics=fid50k_full", f"--metric-data={held_out}")
    assert result.exit_code == 0, result.output
    (args,) = calls
    assert args.metric_kwargs.real_dataset_kwargs.path == str(held_out) and args.metrics == ["fid50k_full"]
    assert {
        k: v for k, v in args.items() if k not in ("metrics", "metric_kwargs", "run_dir", "resume_state", "device")
    } == {k: v for k, v in before.items() if k not in ("metrics", "metric_kwargs", "run_dir")}
