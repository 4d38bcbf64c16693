"""The `clean` resize protocol against PIL itself; `legacy` leaves the detector input untouched; result lines."""

import glob

import numpy as np
import PIL.Image
import pytest
import torch
from test_metrics_domain_detector import write_labelled_image_folder
from test_metrics_features import _read_folder_rgb

from metrics import detectors, domain_classifier, metric_main, metric_utils
from metrics.resize import clean_resize

DATASET_CLASS = "training.dataset.ImageFolderDataset"


def _pil_clean(images: np.ndarray, size: int) -> np.ndarray:
    """clean-fid's procedure with PIL: each channel as a float32 'F' image, bicubic resize, clip to [0, 255]."""
    out = np.empty(images.shape[:2] + (size, size), dtype=np.float32)
    for n in range(images.shape[0]):
        for c in range(images.shape[1]):
            channel = PIL.Image.fromarray(images[n, c].astype(np.float32), mode="F")
            out[n, c] = np.asarray(channel.resize((size, size), resample=PIL.Image.BICUBIC)).clip(0, 255)
    return out


@pytest.mark.parametrize(
    "shape,size", [((2, 3, 32, 32), 299), ((1, 3, 28, 32), 224), ((2, 1, 120, 90), 64), ((1, 3, 8, 8), 8)]
)
def test_clean_resize_equals_pil_bicubic_per_channel(shape, size):
    images = np.random.default_rng(size).integers(0, 256, size=shape, dtype=np.uint8)
    ours = clean_resize(torch.from_numpy(images), size)
    assert ours.dtype == torch.float32 and ours.shape == shape[:2] + (size, size)
    np.testing.assert_allclose(ours.numpy(), _pil_clean(images, size), rtol=0, atol=1e-3)


def _setup(tmp_path, resolution=8, detector_resolution=12):
    data = str(tmp_path / "data")
    write_labelled_image_folder(data, num_images=10, resolution=resolution)
    torch.manual_seed(0)
    model = domain_classifier.DomainClassifier(
        num_classes=2, in_channels=1, resolution=detector_resolution, channels=(4, 6), hidden=6
    )
    detector_path = str(tmp_path / "det.pt")
    domain_classifier.save(model, detector_path, info={})
    return data, detector_path, domain_classifier.load(detector_path)


def _dataset_features(opts, detector_path):
    return metric_utils.compute_feature_stats_for_dataset(
        opts,
        detector_path,
        dict(return_features=True),
        batch_size=4,
        data_loader_kwargs=dict(num_workers=0),
        capture_all=True,
    ).get_all()


def test_dataset_features_under_each_protocol(tmp_path):
    data, detector_path, model = _setup(tmp_path)
    images = _read_folder_rgb(data)
    for mode in ("legacy", "clean"):
        opts = metric_utils.MetricOptions(
            dataset_kwargs=dict(class_name=DATASET_CLASS, path=data), device="cpu", cache=False, resize=mode
        )
        got = _dataset_features(opts, detector_path)
        # legacy: the detector gets the uint8 images and resizes them itself (unchanged behaviour);
        # clean: it gets PIL-bicubic float images already at its 12x12 input size.
        detector_input = torch.from_numpy(images) if mode == "legacy" else torch.from_numpy(_pil_clean(images, 12))
        with torch.no_grad():
            want = model(detector_input, return_features=True).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        assert opts.provenance == dict(detector="det.pt", num_real=10, resize=mode, real_data="data")
    assert not np.allclose(got, model(torch.from_numpy(images), return_features=True).detach().numpy(), atol=1e-3)


def test_resize_protocol_is_part_of_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    data, detector_path, _ = _setup(tmp_path)
    for mode in ("legacy", "clean", "legacy"):
        opts = metric_utils.MetricOptions(
            dataset_kwargs=dict(class_name=DATASET_CLASS, path=data), device="cpu", resize=mode
        )
        _dataset_features(opts, detector_path)
        assert opts.provenance.resize == mode and opts.provenance.num_real == 10
    assert len(glob.glob(str(tmp_path / "cache" / "gan-metrics" / "*.npz"))) == 2


def test_unknown_resize_mode_and_unknown_input_size_are_refused():
    with pytest.raises(ValueError, match="resize must be one of legacy, clean"):
        metric_utils.MetricOptions(resize="bilinear")
    with pytest.raises(ValueError, match="--resize=clean cannot be used"):
        detectors.input_size(torch.nn.Identity(), "/models/my-detector.pt")
    assert detectors.input_size(torch.nn.Identity(), "https://x/inception-2015-12-05.pt") == 299
    assert detectors.input_size(torch.nn.Identity(), "https://x/vgg16.pt") == 224


def test_summary_line_names_counts_detector_and_cap():
    record = dict(
        results={"fid50k_full": 23.25},
        metric="fid50k_full",
        detector="fmnist-detector.pt",
        num_real=2000,
        num_gen=2000,
        resize="legacy",
        num_images=2000,
    )
    assert metric_main.summary_line(record) == (
        "fid50k_full 23.25  [2000 real / 2000 generated images; capped by --num-images=2000: not comparable with 50k results; "
        "detector fmnist-detector.pt; resize legacy]"
    )
    kid = dict(
        results={"kid50k_full": 0.00123},
        metric="kid50k_full",
        detector="inception-2015-12-05.pt",
        num_real=70000,
        num_gen=50000,
        resize="clean",
    )
    assert (
        metric_main.summary_line(kid)
        == "kid50k_full 0.00123 (x10^3: 1.23)  [70000 real / 50000 generated images; detector inception-2015-12-05.pt; resize clean]"
    )
