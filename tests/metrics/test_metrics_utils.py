"""Feature statistics, the dataset-statistics cache key, progress output and result reporting."""

import json
import os

import numpy as np
import pytest
import torch

from metrics import metric_main, metric_utils
from metrics.detectors import INCEPTION_URL
from training.networks import Generator

# ----------------------------------------------------------------------------
# FeatureStats.


def test_feature_stats_mean_cov_in_float64_match_numpy():
    rng = np.random.RandomState(0)
    x = (rng.randn(300, 5) * 1000 + 1e4).astype(np.float32)  # Large offset: float32 sums would lose digits.
    stats = metric_utils.FeatureStats(capture_mean_cov=True)
    for block in np.split(x, [7, 100, 250]):
        stats.append(block)
    mean, cov = stats.get_mean_cov()
    assert mean.dtype == np.float64 and cov.dtype == np.float64
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False, bias=True), rtol=1e-7, atol=1e-6)


def test_feature_stats_truncate_at_max_items():
    stats = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=10)
    x = np.arange(16 * 2, dtype=np.float32).reshape(16, 2)
    stats.append(x[:6])
    assert not stats.is_full()
    stats.append(x[6:])
    stats.append(x)  # Already full: ignored.
    assert stats.is_full() and stats.num_items == 10
    np.testing.assert_array_equal(stats.get_all(), x[:10])
    np.testing.assert_allclose(stats.get_mean_cov()[0], x[:10].mean(axis=0))


def test_feature_stats_save_load_round_trip(tmp_path):
    stats = metric_utils.FeatureStats(capture_all=True, capture_mean_cov=True, max_items=20)
    stats.append(np.random.RandomState(1).randn(12, 3))
    path = str(tmp_path / "stats.npz")
    stats.save(path)
    loaded = metric_utils.FeatureStats.load(path)
    assert (loaded.capture_all, loaded.capture_mean_cov, loaded.max_items, loaded.num_items, loaded.num_features) == (
        True,
        True,
        20,
        12,
        3,
    )
    np.testing.assert_array_equal(loaded.get_all(), stats.get_all())
    for a, b in zip(loaded.get_mean_cov(), stats.get_mean_cov()):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ["stats.npz"]  # No temporary file left behind.


# ----------------------------------------------------------------------------
# Cache key.

_FFHQ_KWARGS = {
    "class_name": "training.dataset.ImageFolderDataset",
    "path": "/data/ffhq256.zip",
    "use_labels": False,
    "max_size": None,
    "xflip": False,
    "resolution": 256,
}


def test_cache_key_rule_reproduces_spec_test_vector():
    # The original's cache key: MD5 of repr(sorted(fields.items())) over its four fields, the same rule as ours.
    fields = dict(
        dataset_kwargs=_FFHQ_KWARGS,
        detector_url=INCEPTION_URL,
        detector_kwargs={"return_features": True},
        stats_kwargs={"capture_mean_cov": True},
    )
    assert metric_utils.cache_key(fields) == "4e71792bab1ba083426b8c9d3788e631"


def _key(**changes):
    args = dict(
        dataset_kwargs=_FFHQ_KWARGS,
        detector_id=INCEPTION_URL,
        detector_kwargs={"return_features": True},
        stats_kwargs={"capture_mean_cov": True},
        num_items=70000,
    )
    args.update(changes)
    return metric_utils.cache_key(metric_utils.dataset_stats_cache_fields(**args))


@pytest.mark.parametrize(
    "change",
    [
        dict(dataset_kwargs=dict(_FFHQ_KWARGS, path="/data/other.zip")),
        dict(dataset_kwargs=dict(_FFHQ_KWARGS, xflip=True)),
        dict(dataset_kwargs=dict(_FFHQ_KWARGS, max_size=1000)),
        dict(dataset_kwargs=dict(_FFHQ_KWARGS, use_labels=True)),
        dict(dataset_kwargs=dict(_FFHQ_KWARGS, resolution=128)),
        dict(dataset_kwargs=dict(_FFHQ_KWARGS, random_seed=1)),
        dict(detector_id="https://example.com/vgg16.pt"),
        dict(detector_id="sha256:0123"),
        dict(detector_kwargs={"return_features": True, "resize_images": False}),
        dict(stats_kwargs={"capture_all": True}),
        dict(num_items=50000),
    ],
)
def test_cache_key_changes_when_any_option_changes(change):
    assert _key(**change) != _key()


def test_cache_key_changes_when_dataset_file_changes(tmp_path):
    path = tmp_path / "data.zip"
    path.write_bytes(b"a")
    kwargs = dict(_FFHQ_KWARGS, path=str(path))
    before = _key(dataset_kwargs=kwargs)
    assert _key(dataset_kwargs=kwargs) == before
    path.write_bytes(b"ab")
    assert _key(dataset_kwargs=kwargs) != before


# ----------------------------------------------------------------------------
# Options and progress.


def test_metric_options_cap_and_detector_override():
    opts = metric_utils.MetricOptions(device="cpu", num_images=24, detector="det.pt")
    assert opts.capped(None) == 24 and opts.capped(50000) == 24 and opts.capped(10) == 10
    assert opts.detector_for(INCEPTION_URL) == "det.pt"
    plain = metric_utils.MetricOptions(device="cpu")
    assert plain.capped(None) is None and plain.capped(50000) == 50000
    assert plain.detector_for(INCEPTION_URL) == INCEPTION_URL
    with pytest.raises(ValueError, match="rank"):
        metric_utils.MetricOptions(num_gpus=2, rank=2, device="cpu")


def test_progress_lines_follow_spec_format(capsys):
    progress = metric_utils.ProgressMonitor(verbose=True).sub(tag="dataset features", num_items=2500)
    for items in (500, 1000, 1500, 2500):
        progress.update(items)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # At >= 1000 items since the last line, and at completion.
    assert lines[0].startswith("dataset features    items 1000    time ")
    assert lines[1].startswith("dataset features    items 2500    time ")
    assert " ms/item " in lines[0]
    silent = metric_utils.ProgressMonitor().sub(tag="x", num_items=10)
    silent.update(10)
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------
# Registry and reporting.


def test_registry_order_and_validation():
    assert metric_main.list_valid_metrics() == [
        "fid50k_full",
        "fid5k_full",
        "fd_dinov2_50k_full",
        "kid50k_full",
        "pr50k3_full",
        "prdc50k_full",
        "ppl2_wend",
        "is50k",
        "conf10k",
        "fid50k",
        "kid50k",
        "pr50k3",
        "ppl_zfull",
        "ppl_wfull",
        "ppl_zend",
        "ppl_wend",
    ]
    assert metric_main.is_valid_metric("fid50k_full") and not metric_main.is_valid_metric("fid")
    with pytest.raises(ValueError, match="Unknown metric 'fid'"):
        metric_main.calc_metric("fid")


def test_report_metric_appends_jsonl_line_with_relative_snapshot(tmp_path, capsys):
    result = dict(
        results={"fid50k_full": 12.5}, metric="fid50k_full", total_time=789.12, total_time_str="13m 09s", num_gpus=1
    )
    snapshot = str(tmp_path / "network-snapshot-000000.pkl")
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=snapshot)
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=snapshot)
    lines = (tmp_path / "metric-fid50k_full.jsonl").read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert list(record.keys()) == [
        "results",
        "metric",
        "total_time",
        "total_time_str",
        "num_gpus",
        "snapshot_pkl",
        "timestamp",
    ]
    assert record["snapshot_pkl"] == "network-snapshot-000000.pkl"
    assert record["results"] == {"fid50k_full": 12.5}
    assert capsys.readouterr().out.splitlines()[0] == lines[0]


def test_report_metric_without_run_dir_only_prints(tmp_path, capsys):
    result = dict(
        results={"is50k_mean": 1.0, "is50k_std": 0.0}, metric="is50k", total_time=1.0, total_time_str="1s", num_gpus=1
    )
    metric_main.report_metric(result, run_dir=None, snapshot_pkl="https://example.com/net.pkl")
    out = capsys.readouterr().out.splitlines()
    record = json.loads(out[0])
    assert record["snapshot_pkl"] == "https://example.com/net.pkl"
    assert out[1] == "is50k_mean 1, is50k_std 0"
    assert os.listdir(tmp_path) == []


class _DetectorRequested(Exception):
    pass


@pytest.mark.parametrize("metric", metric_main.list_valid_metrics())
def test_registered_default_detector_is_the_one_the_metric_loads(metric, monkeypatch):
    """The registry's detector (what the start-of-run checks look for) must be the network the metric asks for."""

    def requested(opts, detector_url, *args, **kwargs):
        raise _DetectorRequested(detector_url)

    monkeypatch.setattr(metric_utils, "compute_feature_stats_for_dataset", requested)
    monkeypatch.setattr(metric_utils, "compute_feature_stats_for_generator", requested)
    monkeypatch.setattr(metric_utils, "get_feature_detector", requested)
    opts = metric_utils.MetricOptions(device="cpu")
    with pytest.raises(_DetectorRequested) as seen:
        metric_main._metric_dict[metric](opts)
    assert str(seen.value) == metric_main.default_detector(metric)


@pytest.mark.parametrize("metric", metric_main.list_valid_metrics())
def test_registered_detector_call_is_the_one_the_metric_makes(metric, monkeypatch):
    """The registry's call keywords (what the start-of-run check tries on a user's detector) are the metric's own."""

    def stats(opts, detector_url, detector_kwargs, *args, **kwargs):
        raise _DetectorRequested(dict(detector_kwargs))

    class Recorder(torch.nn.Module):
        def forward(self, images, **kwargs):
            raise _DetectorRequested(kwargs)

    monkeypatch.setattr(metric_utils, "compute_feature_stats_for_dataset", stats)
    monkeypatch.setattr(metric_utils, "compute_feature_stats_for_generator", stats)
    monkeypatch.setattr(metric_utils, "get_feature_detector", lambda opts, url: Recorder())
    G = Generator(
        8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8)
    )
    opts = metric_utils.MetricOptions(G=G, device="cpu", dataset_kwargs=dict(class_name="x", path="unused"))
    monkeypatch.setattr(metric_utils, "iterate_random_labels", lambda opts, n: iter(lambda: torch.zeros([n, 0]), None))
    with pytest.raises(_DetectorRequested) as seen:
        metric_main._metric_dict[metric](opts)
    assert seen.value.args[0] == metric_main.detector_call(metric)
