"""Real and generated feature extraction: data pipeline, image conversion, cache, and multi-process sharding."""

import glob
import os
import tempfile

import numpy as np
import PIL.Image
import pytest
import torch
from test_metrics_domain_detector import write_labelled_image_folder

from metrics import domain_classifier, formulas, metric_utils

DATASET_CLASS = "training.dataset.ImageFolderDataset"


class PixelDetector(torch.nn.Module):
    """Features = the uint8 pixels themselves (as float), so the pipeline's images can be read back."""

    def forward(self, images, return_features=False):
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        return images.to(torch.float32).flatten(1)


def _save_detector(path: str) -> str:
    torch.manual_seed(0)
    model = domain_classifier.DomainClassifier(num_classes=2, in_channels=1, resolution=8, channels=(4, 6), hidden=6)
    domain_classifier.save(model, path, info={})
    return path


def _read_folder_rgb(path: str) -> np.ndarray:
    """Every PNG in sorted order as uint8 [N, 3, H, W] (gray repeated), read with PIL."""
    files = sorted(glob.glob(os.path.join(path, "*.png")))
    gray = np.stack([np.asarray(PIL.Image.open(f)) for f in files])
    return np.repeat(gray[:, None], 3, axis=1)


def test_dataset_features_equal_detector_on_each_image(tmp_path):
    data = str(tmp_path / "data")
    write_labelled_image_folder(data, num_images=13)
    detector_path = _save_detector(str(tmp_path / "det.pt"))
    opts = metric_utils.MetricOptions(
        dataset_kwargs=dict(class_name=DATASET_CLASS, path=data), device="cpu", cache=False
    )
    stats = metric_utils.compute_feature_stats_for_dataset(
        opts,
        detector_path,
        dict(return_features=True),
        max_items=10,
        batch_size=4,
        data_loader_kwargs=dict(num_workers=0),
        capture_all=True,
        capture_mean_cov=True,
    )
    model = domain_classifier.load(detector_path)
    with torch.no_grad():
        expected = model(torch.from_numpy(_read_folder_rgb(data)[:10]), return_features=True).numpy()
    np.testing.assert_allclose(stats.get_all(), expected, rtol=1e-5, atol=1e-6)
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, expected.astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cov, np.cov(expected.astype(np.float64), rowvar=False, bias=True), rtol=1e-4, atol=1e-6)


def test_dataset_statistics_are_cached_per_image_count(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    data = str(tmp_path / "data")
    write_labelled_image_folder(data, num_images=12)
    detector_path = _save_detector(str(tmp_path / "det.pt"))
    opts = metric_utils.MetricOptions(dataset_kwargs=dict(class_name=DATASET_CLASS, path=data), device="cpu")
    run = lambda max_items: metric_utils.compute_feature_stats_for_dataset(  # noqa: E731
        opts,
        detector_path,
        dict(return_features=True),
        max_items=max_items,
        data_loader_kwargs=dict(num_workers=0),
        capture_mean_cov=True,
    )
    first = run(None)
    files = glob.glob(str(tmp_path / "cache" / "gan-metrics" / "data-det-*.npz"))
    assert len(files) == 1
    # A second run reads the file: prove it by planting a marker in the cached statistics.
    planted = metric_utils.FeatureStats.load(files[0])
    planted.raw_mean = planted.raw_mean + 1000
    planted.save(files[0])
    np.testing.assert_allclose(run(None).get_mean_cov()[0], first.get_mean_cov()[0] + 1000 / 12)
    # Fewer real images: a different key (the original's quirk shared the file), so fresh statistics.
    fewer = run(5)
    assert fewer.num_items == 5
    assert len(glob.glob(str(tmp_path / "cache" / "gan-metrics" / "*.npz"))) == 2


class ConstantGenerator(torch.nn.Module):
    """Every image is the same ramp of values in [-1.2, 1.2] (to exercise clamping and rounding)."""

    z_dim = 3
    c_dim = 0
    img_resolution = 4
    img_channels = 1

    def forward(self, z, c, **kwargs):
        ramp = torch.linspace(-1.2, 1.2, 16, device=z.device).reshape(1, 1, 4, 4)
        return ramp.expand(z.shape[0], 1, 4, 4) + 0 * z[:, :1, None, None]


def test_generated_images_are_converted_with_round_half_up(tmp_path, monkeypatch):
    data = str(tmp_path / "data")
    write_labelled_image_folder(data, num_images=4, resolution=4)
    monkeypatch.setattr(metric_utils, "get_feature_detector", lambda _opts, _url: PixelDetector())
    opts = metric_utils.MetricOptions(
        G=ConstantGenerator(), dataset_kwargs=dict(class_name=DATASET_CLASS, path=data), device="cpu"
    )
    stats = metric_utils.compute_feature_stats_for_generator(opts, "pixels", {}, capture_all=True, max_items=70)
    features = stats.get_all()
    assert features.shape == (70, 3 * 16)  # 2 steps of 64, truncated to 70; gray repeated to RGB.
    ramp = np.linspace(-1.2, 1.2, 16)
    expected = np.clip(np.floor((ramp + 1) * 127.5 + 0.5), 0, 255)
    np.testing.assert_array_equal(features[0], np.tile(expected, 3))
    np.testing.assert_array_equal(features, np.tile(features[:1], (70, 1)))


@pytest.mark.parametrize("batch_gen, expected_calls", [(None, [64, 64]), (4, [4] * 32), (16, [16] * 8)])
def test_generator_call_size_defaults_to_the_whole_step_on_the_cpu(tmp_path, monkeypatch, batch_gen, expected_calls):
    """On the CPU, G makes a step's 64 images in one call unless `batch_gen` says otherwise (4 is the GPU default)."""
    data = str(tmp_path / "data")
    write_labelled_image_folder(data, num_images=4, resolution=4)
    monkeypatch.setattr(metric_utils, "get_feature_detector", lambda _opts, _url: PixelDetector())
    calls = []

    class RecordingGenerator(ConstantGenerator):
        def forward(self, z, c, **kwargs):
            calls.append(z.shape[0])
            return super().forward(z, c, **kwargs)

    opts = metric_utils.MetricOptions(
        G=RecordingGenerator(), dataset_kwargs=dict(class_name=DATASET_CLASS, path=data), device="cpu"
    )
    kwargs = {} if batch_gen is None else dict(batch_gen=batch_gen)
    stats = metric_utils.compute_feature_stats_for_generator(
        opts, "pixels", {}, capture_all=True, max_items=70, **kwargs
    )
    assert stats.get_all().shape == (70, 3 * 16)
    assert calls[: len(expected_calls)] == expected_calls and sum(calls) == 128


# ----------------------------------------------------------------------------
# Several processes (gloo on CPU).


def _distributed_worker(rank: int, world: int, init_file: str, data: str, detector_path: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        opts = metric_utils.MetricOptions(
            dataset_kwargs=dict(class_name=DATASET_CLASS, path=data),
            num_gpus=world,
            rank=rank,
            device="cpu",
            cache=False,
        )
        stats = metric_utils.compute_feature_stats_for_dataset(
            opts,
            detector_path,
            dict(return_features=True),
            batch_size=4,
            data_loader_kwargs=dict(num_workers=0),
            capture_all=True,
        )
        features = stats.get_all_torch()
        precision, recall = formulas.pr_from_torch_features(
            features[:6], features[5:], nhood_size=2, row_batch_size=3, col_batch_size=2, num_gpus=world, rank=rank
        )
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), features=stats.get_all(), pr=np.array([precision, recall]))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_shard_and_gather_in_dataset_order(tmp_path):
    data = str(tmp_path / "data")
    write_labelled_image_folder(data, num_images=11)  # 6 per rank, the last one wraps around and is dropped.
    detector_path = _save_detector(str(tmp_path / "det.pt"))
    with tempfile.TemporaryDirectory() as init_dir:
        torch.multiprocessing.spawn(
            _distributed_worker, args=(2, os.path.join(init_dir, "init"), data, detector_path, str(tmp_path)), nprocs=2
        )
    model = domain_classifier.load(detector_path)
    with torch.no_grad():
        expected = model(torch.from_numpy(_read_folder_rgb(data)), return_features=True).numpy()
    rank0, rank1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    np.testing.assert_allclose(rank0["features"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rank1["features"], rank0["features"])
    single = formulas.pr_from_torch_features(
        torch.from_numpy(expected[:6]), torch.from_numpy(expected[5:]), nhood_size=2
    )
    np.testing.assert_allclose(rank0["pr"], single, rtol=1e-6)
    assert np.isnan(rank1["pr"]).all()  # Only rank 0 forms the result.
