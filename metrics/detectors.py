"""Feature detectors for the metrics: locating, loading and caching them.

A detector is named by a URL or a local path and may be one of four kinds of file:
* a TorchScript archive (the original's `inception-2015-12-05.pt` and `vgg16.pt`), loaded with
  `torch.jit.load` unchanged. Its graph is code: it runs when the detector is called and may call operators
  that read or write files. A TorchScript file is therefore loaded only when trusted: the published detectors
  named by their URLs (downloaded, or their copies in the detector folder), or a file or URL the user names
  with `--trust-detector` / `$GAN_TRUSTED_DETECTORS`; any other is refused in one line saying how to trust it;
* the converted FID Inception weights `pt_inception-2015-12-05-6726825d.pth` (a plain tensor dict), run
  by the native `metrics.inception.InceptionV3FID`;
* a domain detector file made by `python -m metrics.domain_detector` (plain tensors + config);
* a DINOv2 ViT checkpoint such as `dinov2_vitl14_pretrain.pth` (plain tensors), run by the native
  `metrics.dinov2.DINOv2ViT` (FD_DINOv2).
The last three are read with `torch.load(weights_only=True)`. All of them are called as
`detector(images, **detector_kwargs)` with uint8 RGB images [N, 3, H, W] and the original's keyword arguments:
`return_features=True` (features for FID, KID, PR), `no_output_bias=True` (class probabilities for IS) or
`resize_images=False, return_lpips=True` (LPIPS embedding for PPL).

Downloads go through `dnnlib.util.open_url` (cached). A folder of local copies can be named with
`$GAN_DETECTOR_DIR` or the `detector_dir` argument (`--detector-dir`): a URL whose file name is found there
is read from there and never downloaded.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterable

import torch

import dnnlib
from metrics import dinov2, domain_classifier
from metrics.inception import InceptionV3FID

_METRICS_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics"
INCEPTION_URL = f"{_METRICS_URL}/inception-2015-12-05.pt"
VGG16_URL = f"{_METRICS_URL}/vgg16.pt"
NATIVE_INCEPTION_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
DETECTOR_DIR_ENV = "GAN_DETECTOR_DIR"
TRUSTED_DETECTORS_ENV = "GAN_TRUSTED_DETECTORS"
# The published TorchScript detectors: trusted by URL (the file comes from there or is the user's copy of it).
PUBLISHED_TORCHSCRIPT = (INCEPTION_URL, VGG16_URL)


class DetectorUnavailableError(OSError):
    """A detector file could not be found or downloaded; the message says where to put it."""


def resolve_detector_dir(detector_dir: str | None = None) -> str | None:
    """The folder of local detector copies: the argument, else `$GAN_DETECTOR_DIR`, else None."""
    return detector_dir or os.environ.get(DETECTOR_DIR_ENV) or None


def file_name(url_or_path: str) -> str:
    """The file name part of a URL or path, e.g. `vgg16.pt`."""
    if dnnlib.util.is_url(url_or_path, allow_file_urls=True):
        return os.path.basename(urllib.parse.urlparse(url_or_path).path)
    return os.path.basename(url_or_path)


def detector_name(url_or_path: str) -> str:
    """Short name used in cache file names: the file stem, e.g. `inception-2015-12-05`."""
    return os.path.splitext(file_name(url_or_path))[0]


def locate(url_or_path: str, detector_dir: str | None = None, verbose: bool = False) -> str:
    """Local file name of a detector: a path as given; a URL from the detector folder, else the download cache.

    Raises DetectorUnavailableError naming the file, the URL and where to put a copy when it cannot be had.
    """
    if not dnnlib.util.is_url(url_or_path):
        try:
            return dnnlib.util.open_url(url_or_path, return_filename=True)
        except FileNotFoundError:
            raise DetectorUnavailableError(f'Detector file not found: "{url_or_path}"') from None
    local_dir = resolve_detector_dir(detector_dir)
    name = file_name(url_or_path)
    if local_dir is not None and os.path.isfile(os.path.join(local_dir, name)):
        return os.path.join(local_dir, name)
    try:
        return dnnlib.util.open_url(url_or_path, return_filename=True, verbose=verbose)
    except OSError as err:
        where = local_dir or f"a folder named by ${DETECTOR_DIR_ENV} or --detector-dir"
        raise DetectorUnavailableError(
            f'Detector "{name}" is not available: cannot download {url_or_path} ({type(err).__name__}). '
            f"Download it on a machine with internet access and put it in {where}, "
            f"or use a local detector with --detector=PATH (see docs/metrics.md)."
        ) from None


def detector_identity(url_or_path: str, detector_dir: str | None = None) -> str:
    """What identifies a detector's outputs in cache keys: the URL for a URL, the sha256 of the file otherwise."""
    if dnnlib.util.is_url(url_or_path):
        return url_or_path
    digest = hashlib.sha256()
    with open(locate(url_or_path, detector_dir), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


class UntrustedDetectorError(ValueError):
    """A TorchScript detector that the user has not named as trusted; the message says how to trust it."""


def _trust_key(url_or_path: str) -> str:
    return url_or_path if dnnlib.util.is_url(url_or_path, allow_file_urls=True) else os.path.realpath(url_or_path)


def trusted_detectors() -> tuple[str, ...]:
    """The detector files and URLs the user trusts to hold TorchScript: `$GAN_TRUSTED_DETECTORS`, comma-separated."""
    return tuple(name for name in os.environ.get(TRUSTED_DETECTORS_ENV, "").split(",") if name)


def trust_detectors(names: Iterable[str]) -> None:
    """Trust TorchScript in these detector files (real paths) or URLs, in this process and the ones it starts."""
    merged = list(trusted_detectors())
    for name in names:
        key = _trust_key(name)
        if key not in merged:
            merged.append(key)
    os.environ[TRUSTED_DETECTORS_ENV] = ",".join(merged)


def is_trusted(url_or_path: str) -> bool:
    """May a TorchScript graph named by `url_or_path` run? Published URLs and the user's trusted names only."""
    return url_or_path in PUBLISHED_TORCHSCRIPT or _trust_key(url_or_path) in trusted_detectors()


def _is_torchscript(filename: str) -> bool:
    if not zipfile.is_zipfile(filename):
        return False
    with zipfile.ZipFile(filename) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def load_detector_file(
    filename: str, device: torch.device | str = "cpu", trusted: bool = False, name: str | None = None
) -> torch.nn.Module:
    """Load one detector file (any of the four kinds) in eval mode on `device`.

    A TorchScript file loads only with `trusted=True` (see `is_trusted`); else UntrustedDetectorError. `name`
    is how the user named the detector (path or URL), for messages. Other bad files raise ValueError.
    """
    name = name or filename
    if _is_torchscript(filename):
        if not trusted:
            raise UntrustedDetectorError(
                f'"{name}" is a TorchScript detector: its graph is code that runs when it is used, so it loads '
                f"only when trusted; if you trust it, pass --trust-detector={name} or set {TRUSTED_DETECTORS_ENV}="
                f"{name} (a domain detector or a weights file needs no trust)"
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning)
            return torch.jit.load(filename, map_location="cpu").eval().to(device)
    try:
        obj = dnnlib.util.load_weights_only(filename)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line explanation.
        reason = dnnlib.util.load_error_reason(err)
        raise ValueError(
            f'"{name}" is not a detector file (neither TorchScript nor a weights-only tensor dict: {reason})'
        ) from None
    if domain_classifier.is_file_dict(obj):
        model = domain_classifier.from_file_dict(obj)
    elif isinstance(obj, dict) and "Mixed_7c.branch_pool.conv.weight" in obj and "fc.weight" in obj:
        model = InceptionV3FID()
        model.load_state_dict(obj)
    elif dinov2.is_state_dict(obj):
        model = dinov2.from_state_dict(obj)
    else:
        raise ValueError(
            f'"{name}" is not a detector file: expected TorchScript, the FID Inception weights, a DINOv2 checkpoint or a domain detector'
        )
    return model.eval().requires_grad_(False).to(device)


def check_calls(detector: torch.nn.Module, name: str, resolution: int, calls: Iterable[dict]) -> None:
    """Call `detector` as the metrics will, once per keyword set, on two grey images of `resolution`.

    Images are uint8 RGB [2, 3, R, R], or float 0..255 for `resize_images=False` (PPL's call). ValueError (one
    line naming the call and what a detector must be) unless every call returns a float tensor [2, F].
    """
    images = torch.full([2, 3, resolution, resolution], 128, dtype=torch.uint8)
    for kwargs in calls:
        call = ", ".join(f"{key}={value}" for key, value in kwargs.items())
        try:
            with torch.no_grad():
                out = detector(images.float() if kwargs.get("resize_images") is False else images, **kwargs)
            ok = isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == 2 and out.is_floating_point()
            problem = None if ok else f"returned {type(out).__name__} {list(getattr(out, 'shape', []))}"
        except Exception as err:  # noqa: BLE001 - the detector's own error, reduced to its first line.
            problem = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if problem is not None:
            raise ValueError(
                f'detector "{name}" fails the metrics\' call detector(images, {call}) ({problem}); a detector takes '
                "uint8 RGB images [N, 3, H, W] with these keywords and returns [N, F] (see docs/metrics.md)"
            )


_TORCHSCRIPT_INPUT_SIZES = {"inception-2015-12-05": 299, "vgg16": 224}


def input_size(detector: torch.nn.Module, url_or_path: str) -> int:
    """The square input size a detector resizes its images to (used by the `clean` resize protocol).

    Native detectors carry it as `input_size`; the original's TorchScript files are known by name.
    """
    size = getattr(detector, "input_size", None)
    if size is None:
        size = _TORCHSCRIPT_INPUT_SIZES.get(detector_name(url_or_path))
    if size is None:
        raise ValueError(
            f'the input size of detector "{url_or_path}" is unknown, so --resize=clean cannot be used with it; use --resize=legacy'
        )
    return int(size)


_detector_cache: dict[tuple[str, str | None, str], torch.nn.Module] = {}


def get_detector(
    url_or_path: str,
    device: torch.device | str = "cpu",
    detector_dir: str | None = None,
    num_gpus: int = 1,
    rank: int = 0,
    verbose: bool = False,
) -> torch.nn.Module:
    """Load a detector once per (source, device); with several processes rank 0 loads (downloads) first."""
    key = (url_or_path, resolve_detector_dir(detector_dir), str(device))
    if key not in _detector_cache:
        if num_gpus > 1 and rank != 0:
            torch.distributed.barrier()
        filename = locate(url_or_path, detector_dir, verbose=verbose and rank == 0)
        _detector_cache[key] = load_detector_file(filename, device, is_trusted(url_or_path), url_or_path)
        if num_gpus > 1 and rank == 0:
            torch.distributed.barrier()
    return _detector_cache[key]
