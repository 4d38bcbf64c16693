"""Detector files: kinds (TorchScript, native Inception weights, domain detector), location, offline errors."""

import importlib.util
import os

import pytest
import torch
from conftest import REFERENCE_DIR  # noqa: E402

import dnnlib
from metrics import detectors, domain_classifier

REFERENCE_DIR = str(REFERENCE_DIR)


class _TinyDetector(torch.nn.Module):
    """Stands in for the TorchScript detectors: same keyword convention."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = self.proj(x.to(torch.float32).mean(dim=(2, 3)))
        return features if return_features else torch.softmax(features, dim=1)


def _images(n: int = 2, size: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, [n, 3, size, size], dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")
def test_torchscript_detector_loads_unchanged(tmp_path):
    module = _TinyDetector().eval()
    path = str(tmp_path / "tiny.pt")
    torch.jit.save(torch.jit.script(module), path)
    loaded = detectors.load_detector_file(path, trusted=True)
    x = _images()
    torch.testing.assert_close(loaded(x, return_features=True), module(x, return_features=True))
    torch.testing.assert_close(loaded(x), module(x))


def test_domain_detector_file_is_weights_only(tmp_path):
    model = domain_classifier.DomainClassifier(
        num_classes=3, in_channels=1, resolution=8, channels=(4, 6), hidden=5
    ).eval()
    path = str(tmp_path / "det.pt")
    domain_classifier.save(model, path, info=dict(holdout_accuracy=0.5))
    raw = torch.load(path, weights_only=True)  # Plain tensors, numbers and strings only.
    assert raw["format"] == domain_classifier.DETECTOR_FORMAT and raw["info"]["holdout_accuracy"] == 0.5
    loaded = detectors.load_detector_file(path)
    x = _images()
    torch.testing.assert_close(loaded(x, return_features=True), model(x, return_features=True))
    torch.testing.assert_close(loaded(x), model(x))


def test_native_inception_weight_file_reproduces_reference(tmp_path, reference_dir):
    cases_file = os.path.join(REFERENCE_DIR, "inception_fid_cases.pt")
    spec = importlib.util.spec_from_file_location("mk", os.path.join(REFERENCE_DIR, "make_inception_random_weights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = str(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    torch.save(module.make_state_dict(os.path.join(REFERENCE_DIR, "inception_fid_layout.json")), path)
    reference = torch.load(cases_file, weights_only=True)
    net = detectors.get_detector(path, "cpu")
    with torch.no_grad():
        features = net(reference["c400x320.input"], return_features=True)
    torch.testing.assert_close(features, reference["c400x320.pool3"], rtol=0, atol=1e-4)
    assert detectors.get_detector(path, "cpu") is net  # Cached per (source, device).


def test_non_detector_file_is_rejected(tmp_path):
    path = tmp_path / "notes.pt"
    torch.save({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a detector file"):
        detectors.load_detector_file(str(path))
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a detector file"):
        detectors.load_detector_file(str(path))


def test_url_is_read_from_detector_dir(tmp_path, monkeypatch):
    local = tmp_path / "vgg16.pt"
    local.write_bytes(b"x")
    monkeypatch.delenv(detectors.DETECTOR_DIR_ENV, raising=False)
    assert detectors.locate(detectors.VGG16_URL, detector_dir=str(tmp_path)) == str(local)
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, str(tmp_path))
    assert detectors.locate(detectors.VGG16_URL) == str(local)


def test_offline_error_names_file_url_and_folder(tmp_path, monkeypatch):
    def offline(url, num_attempts, verbose):
        raise dnnlib.util.DownloadError("connection refused")

    monkeypatch.setattr(dnnlib.util, "_download", offline)
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(detectors.DETECTOR_DIR_ENV, str(tmp_path / "detectors"))
    with pytest.raises(detectors.DetectorUnavailableError) as info:
        detectors.locate(detectors.INCEPTION_URL)
    message = str(info.value)
    assert "inception-2015-12-05.pt" in message
    assert detectors.INCEPTION_URL in message
    assert str(tmp_path / "detectors") in message
    assert "--detector" in message


def test_missing_local_detector_is_reported(tmp_path):
    with pytest.raises(detectors.DetectorUnavailableError, match="not found"):
        detectors.locate(str(tmp_path / "missing.pt"))


def test_detector_identity_follows_file_content(tmp_path):
    assert detectors.detector_identity(detectors.VGG16_URL) == detectors.VGG16_URL
    path = tmp_path / "det.pt"
    path.write_bytes(b"one")
    first = detectors.detector_identity(str(path))
    path.write_bytes(b"two")
    assert first.startswith("sha256:") and detectors.detector_identity(str(path)) != first
    assert detectors.detector_name(detectors.INCEPTION_URL) == "inception-2015-12-05"
    assert detectors.detector_name(str(path)) == "det"


class _FileToucher(torch.nn.Module):
    """A TorchScript graph that writes a file when called: TorchScript is code."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        torch.save(x, "TOUCHED_BY_DETECTOR.pt")
        return x.float().flatten(1)


@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")
def test_torchscript_runs_only_when_trusted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(detectors.TRUSTED_DETECTORS_ENV, raising=False)
    path = str(tmp_path / "mine.pt")
    torch.jit.save(torch.jit.script(_TinyDetector().eval()), path)
    with pytest.raises(detectors.UntrustedDetectorError) as info:
        detectors.get_detector(path, "cpu")
    message = str(info.value)
    assert "\n" not in message and f"--trust-detector={path}" in message and detectors.TRUSTED_DETECTORS_ENV in message
    detectors.trust_detectors([os.path.relpath(path)])  # Trusted by any spelling of the same file.
    assert detectors.is_trusted(path) and detectors.get_detector(path, "cpu")(
        _images(), return_features=True
    ).shape == (2, 4)
    toucher = str(tmp_path / "toucher.pt")
    torch.jit.save(torch.jit.script(_FileToucher()), toucher)
    with pytest.raises(detectors.UntrustedDetectorError):
        detectors.get_detector(toucher, "cpu")
    assert not (tmp_path / "TOUCHED_BY_DETECTOR.pt").exists()


@pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")
def test_published_detector_copy_in_the_detector_folder_is_trusted(tmp_path, monkeypatch):
    monkeypatch.delenv(detectors.TRUSTED_DETECTORS_ENV, raising=False)
    torch.jit.save(torch.jit.script(_TinyDetector().eval()), str(tmp_path / "vgg16.pt"))
    net = detectors.get_detector(detectors.VGG16_URL, "cpu", detector_dir=str(tmp_path))
    assert net(_images(), return_features=True).shape == (2, 4)
    assert detectors.is_trusted(detectors.VGG16_URL) and not detectors.is_trusted("https://example.com/vgg16.pt")


def test_unfit_detector_module_is_one_line():
    class OtherArguments(torch.nn.Module):
        def forward(self, x, scale):
            return x

    with pytest.raises(ValueError) as info:
        detectors.check_calls(OtherArguments(), "other.pt", 8, [dict(return_features=True)])
    message = str(info.value)
    assert "\n" not in message and "detector(images, return_features=True)" in message and "[N, F]" in message
    detectors.check_calls(_TinyDetector(), "tiny.pt", 8, [dict(return_features=True)])  # A fit one passes.
