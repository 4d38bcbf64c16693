"""Shared machinery of the metrics: options, progress output, feature statistics, real/generated features.

Feature extraction is sharded over processes (torch.distributed): each rank processes every G-th item and
the per-batch features are all-gathered and interleaved, so every rank ends up with the same statistics in
dataset order. In a single process no collective call is made.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
from typing import Any

import numpy as np
import torch

import dnnlib
from dnnlib import atomic
from dnnlib.progress import ProgressBar
from metrics import detectors
from metrics.resize import check_resize_mode, clean_resize

# ----------------------------------------------------------------------------
# Options.


class MetricOptions:
    """Everything a metric needs.

    G: generator (normally G_ema); G_kwargs: extra G(z, c) arguments; dataset_kwargs: real-data kwargs
    (copied); num_gpus/rank: process group layout; device: default `cuda:<rank>` if CUDA is available,
    else CPU; progress: a ProgressMonitor (silent by default); cache: reuse dataset statistics on disk;
    detector: URL/path replacing every metric's default detector; detector_dir: folder of local detector
    copies; num_images: caps the real and generated image counts and PPL samples (quick checks only:
    results are then not comparable with 50k numbers); resize: 'legacy' (the detector resizes uint8 images
    itself, the original's protocol) or 'clean' (PIL bicubic per channel in float first, see metrics.resize);
    real_dataset_kwargs: the dataset the real statistics come from instead of dataset_kwargs (`train.py
    --metric-data`: a held-out or full set, read whole and unflipped); the generated images' labels still
    follow dataset_kwargs.

    `provenance` is filled while a metric runs with what it actually used (detector file name, real and
    generated image counts, resize protocol) and goes into the result line.
    """

    def __init__(
        self,
        G: torch.nn.Module | None = None,
        G_kwargs: dict | None = None,
        dataset_kwargs: dict | None = None,
        num_gpus: int = 1,
        rank: int = 0,
        device: torch.device | str | None = None,
        progress: ProgressMonitor | None = None,
        cache: bool = True,
        detector: str | None = None,
        detector_dir: str | None = None,
        num_images: int | None = None,
        resize: str = "legacy",
        real_dataset_kwargs: dict | None = None,
    ):
        if not 0 <= rank < num_gpus:
            raise ValueError(f"rank must be in [0, num_gpus), got rank={rank}, num_gpus={num_gpus}")
        if num_images is not None and num_images < 1:
            raise ValueError(f"num_images must be a positive count, got {num_images}")
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs or {})
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs or {})
        self.num_gpus = num_gpus
        self.rank = rank
        if device is None:
            device = f"cuda:{rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.progress = progress.sub() if progress is not None and rank == 0 else ProgressMonitor()
        self.cache = cache
        self.detector = detector
        self.detector_dir = detector_dir
        self.num_images = num_images
        self.resize = check_resize_mode(resize)
        self.real_dataset_kwargs = dnnlib.EasyDict(real_dataset_kwargs) if real_dataset_kwargs else None
        self.provenance = dnnlib.EasyDict()

    def detector_for(self, default_url: str) -> str:
        """The detector to use: the user's override if given, else the metric's default URL."""
        return self.detector or default_url

    def capped(self, count: int | None) -> int | None:
        """A metric's image count with the num_images cap applied (None = all)."""
        if self.num_images is None:
            return count
        return self.num_images if count is None else min(count, self.num_images)


def get_feature_detector(opts: MetricOptions, url_or_path: str) -> torch.nn.Module:
    """The detector named by url_or_path on opts.device (loaded once per process; rank 0 first)."""
    opts.provenance.detector = detectors.file_name(url_or_path)
    return detectors.get_detector(
        url_or_path, opts.device, opts.detector_dir, opts.num_gpus, opts.rank, verbose=opts.progress.verbose
    )


def detector_input(
    opts: MetricOptions, detector: torch.nn.Module, detector_url: str, images: torch.Tensor
) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> what the detector is called with under opts.resize (RGB; clean: resized floats)."""
    images = _as_rgb_uint8(images)
    if opts.resize == "clean":
        images = clean_resize(images, detectors.input_size(detector, detector_url))
    return images


def iterate_random_labels(opts: MetricOptions, batch_size: int):
    """Endless batches of labels [batch_size, c_dim] of uniformly random dataset items (NumPy global RNG)."""
    dataset = dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)
    while True:
        c = np.stack([dataset.get_label(np.random.randint(len(dataset))) for _ in range(batch_size)])
        yield torch.from_numpy(c).to(opts.device)


# ----------------------------------------------------------------------------
# Progress.


class ProgressMonitor:
    """Progress of one stage: prints `{tag:<19s} items ... time ... ms/item ...` lines (the original's format) every
    `flush_interval` items and at completion, plus a live bar on stderr when it is a terminal."""

    def __init__(
        self, tag: str | None = None, num_items: int | None = None, flush_interval: int = 1000, verbose: bool = False
    ):
        self.tag = tag
        self.num_items = num_items
        self.flush_interval = flush_interval
        self.verbose = verbose
        self.start_time = time.time()
        self.batch_time = self.start_time
        self.batch_items = 0
        self.bar: ProgressBar | None = None  # Live bar on a terminal, between the printed progress lines.

    def update(self, cur_items: int) -> None:
        if not self.verbose:
            return
        if cur_items < self.batch_items + self.flush_interval and (
            self.num_items is None or cur_items < self.num_items
        ):
            self._draw_bar(cur_items)
            return
        now = time.time()
        total = now - self.start_time
        ms_per_item = (now - self.batch_time) / max(cur_items - self.batch_items, 1) * 1e3
        if self.tag is not None:
            self._clear_bar()
            print(
                f"{self.tag:<19s} items {cur_items:<7d} time {dnnlib.util.format_time(total):<12s} ms/item {ms_per_item:.2f}",
                flush=True,
            )
        self.batch_time = now
        self.batch_items = cur_items

    def _draw_bar(self, cur_items: int) -> None:
        if self.tag is not None and self.num_items is not None:
            if self.bar is None:
                self.bar = ProgressBar(self.num_items, desc=self.tag, unit="img")
            self.bar.update(cur_items - self.bar.count)

    def _clear_bar(self) -> None:
        if self.bar is not None and self.bar.enabled:
            sys.stderr.write("\r\033[K")

    def sub(self, tag: str | None = None, num_items: int | None = None) -> ProgressMonitor:
        """A monitor for a sub-stage with the same verbosity."""
        return ProgressMonitor(tag=tag, num_items=num_items, flush_interval=self.flush_interval, verbose=self.verbose)


# ----------------------------------------------------------------------------
# Feature statistics.


def all_gather_interleaved(x: torch.Tensor, num_gpus: int) -> torch.Tensor:
    """[n, ...] per rank -> [num_gpus * n, ...] on every rank, ordered rank 0 row 0, rank 1 row 0, ..."""
    if num_gpus == 1:
        return x
    gathered = [torch.empty_like(x) for _ in range(num_gpus)]
    torch.distributed.all_gather(gathered, x)
    return torch.stack(gathered, dim=1).flatten(0, 1)


class FeatureStats:
    """Accumulates features [n, F]: all rows (capture_all) and/or float64 sums for mean/cov (capture_mean_cov).

    With max_items set, rows beyond it are dropped.
    """

    _ARRAYS = ("raw_mean", "raw_cov")

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False, max_items: int | None = None):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features: int | None = None
        self.all_features: list[np.ndarray] = []
        self.raw_mean: np.ndarray | None = None
        self.raw_cov: np.ndarray | None = None

    def _set_num_features(self, num_features: int) -> None:
        if self.num_features is not None:
            if num_features != self.num_features:
                raise ValueError(f"feature size changed from {self.num_features} to {num_features}")
            return
        self.num_features = num_features
        self.raw_mean = np.zeros([num_features], dtype=np.float64)
        self.raw_cov = np.zeros([num_features, num_features], dtype=np.float64)

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x: np.ndarray) -> None:
        """Add rows x [n, F] (cast to float32), truncated at max_items."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"features must be [N, F], got shape {list(x.shape)}")
        if self.max_items is not None and self.num_items + x.shape[0] > self.max_items:
            if self.num_items >= self.max_items:
                return
            x = x[: self.max_items - self.num_items]
        self._set_num_features(x.shape[1])
        self.num_items += x.shape[0]
        if self.capture_all:
            self.all_features.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self.raw_mean += x64.sum(axis=0)
            self.raw_cov += x64.T @ x64

    def append_torch(self, x: torch.Tensor, num_gpus: int = 1) -> None:
        """Gather x [n, F] from every rank (sample-interleaved) and append."""
        self.append(all_gather_interleaved(x, num_gpus).cpu().numpy())

    def get_all(self) -> np.ndarray:
        """All captured rows, float32 [num_items, F]."""
        if not self.capture_all:
            raise ValueError("get_all() needs capture_all=True")
        return np.concatenate(self.all_features, axis=0)

    def get_all_torch(self) -> torch.Tensor:
        return torch.from_numpy(self.get_all())

    def get_mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean [F] and biased covariance [F, F] (float64) of everything appended."""
        if not self.capture_mean_cov:
            raise ValueError("get_mean_cov() needs capture_mean_cov=True")
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items - np.outer(mean, mean)
        return mean, cov

    def save(self, path: str) -> None:
        """Write to an .npz file atomically (`dnnlib.atomic`)."""
        arrays = {
            "capture_all": np.array(self.capture_all),
            "capture_mean_cov": np.array(self.capture_mean_cov),
            "max_items": np.array(-1 if self.max_items is None else self.max_items),
            "num_items": np.array(self.num_items),
            "num_features": np.array(-1 if self.num_features is None else self.num_features),
            "all_features": self.get_all() if self.capture_all and self.all_features else np.zeros([0, 0], np.float32),
            "raw_mean": self.raw_mean if self.raw_mean is not None else np.zeros([0]),
            "raw_cov": self.raw_cov if self.raw_cov is not None else np.zeros([0, 0]),
        }
        with atomic.atomic_path(path, suffix=".npz") as tmp_path:
            np.savez(tmp_path, **arrays)

    @staticmethod
    def load(path: str) -> FeatureStats:
        with np.load(path, allow_pickle=False) as data:
            max_items = int(data["max_items"])
            stats = FeatureStats(
                bool(data["capture_all"]), bool(data["capture_mean_cov"]), None if max_items < 0 else max_items
            )
            stats.num_items = int(data["num_items"])
            num_features = int(data["num_features"])
            if num_features >= 0:
                stats.num_features = num_features
                stats.raw_mean = data["raw_mean"]
                stats.raw_cov = data["raw_cov"]
            if stats.capture_all and stats.num_items > 0:
                stats.all_features = [data["all_features"]]
        return stats


# ----------------------------------------------------------------------------
# Dataset statistics cache.


def cache_key(fields: dict[str, Any]) -> str:
    """MD5 hex digest of repr(sorted(fields.items())): the original's key rule, so its cached statistics match."""
    return hashlib.md5(repr(sorted(fields.items())).encode("utf-8")).hexdigest()


def dataset_fingerprint(path: str | None) -> tuple[int, int] | None:
    """(size, mtime in ns) of a dataset file such as a zip; None for folders (their item count is keyed)."""
    if path is None or not os.path.isfile(path):
        return None
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns)


def dataset_stats_cache_fields(
    dataset_kwargs: dict,
    detector_id: str,
    detector_kwargs: dict,
    stats_kwargs: dict,
    num_items: int,
    resize_mode: str = "legacy",
) -> dict[str, Any]:
    """Everything the cached dataset statistics depend on.

    The original's four fields, plus the number of real images used (which the original left out, so that
    e.g. fid50k and fid50k_full could share a file), the dataset file's size and modification time, and the
    resize protocol.
    """
    return dict(
        dataset_kwargs=dict(dataset_kwargs),
        detector_url=detector_id,
        detector_kwargs=dict(detector_kwargs),
        stats_kwargs=dict(stats_kwargs),
        num_items=num_items,
        dataset_file=dataset_fingerprint(dataset_kwargs.get("path")),
        resize=resize_mode,
    )


def _broadcast_flag(flag: bool, opts: MetricOptions) -> bool:
    if opts.num_gpus == 1:
        return flag
    t = torch.as_tensor(float(flag), dtype=torch.float32, device=opts.device)
    torch.distributed.broadcast(tensor=t, src=0)
    return bool(t.item() != 0)


def _as_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """Repeat grayscale [N, 1, H, W] to 3 channels; detectors take RGB."""
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


# ----------------------------------------------------------------------------
# Real and generated features.


def compute_feature_stats_for_dataset(
    opts: MetricOptions,
    detector_url: str,
    detector_kwargs: dict,
    max_items: int | None = None,
    batch_size: int = 64,
    data_loader_kwargs: dict | None = None,
    **stats_kwargs: Any,
) -> FeatureStats:
    """Detector features of the first min(len(dataset), max_items) real images, cached on disk.

    The real images come from opts.real_dataset_kwargs when set, else from opts.dataset_kwargs; the dataset's
    file name goes into the result's provenance (`real_data`) and its options into the cache key.
    """
    dataset_kwargs = opts.real_dataset_kwargs or opts.dataset_kwargs
    dataset = dnnlib.util.construct_class_by_name(**dataset_kwargs)
    opts.provenance.real_data = os.path.basename(os.path.normpath(str(dataset_kwargs.get("path", dataset.name))))
    if data_loader_kwargs is None:
        data_loader_kwargs = dict(
            pin_memory=opts.device.type == "cuda",
            num_workers=min(3, os.cpu_count() or 1),
            prefetch_factor=2,
            worker_init_fn=dnnlib.util.ignore_stop_signals,  # The main process handles Ctrl-C and SIGTERM.
        )
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    if num_items == 0:
        raise ValueError(f"dataset {dataset_kwargs.get('path')!r} holds no images")

    cache_file = None
    if opts.cache:
        detector_id = detectors.detector_identity(detector_url, opts.detector_dir)
        fields = dataset_stats_cache_fields(
            dataset_kwargs, detector_id, detector_kwargs, stats_kwargs, num_items, opts.resize
        )
        name = f"{dataset.name}-{detectors.detector_name(detector_url)}-{cache_key(fields)}.npz"
        cache_file = dnnlib.make_cache_dir_path("gan-metrics", name)
        if _broadcast_flag(os.path.isfile(cache_file) if opts.rank == 0 else False, opts):
            stats = FeatureStats.load(cache_file)
            opts.provenance.update(
                detector=detectors.file_name(detector_url), num_real=stats.num_items, resize=opts.resize
            )
            return stats

    stats = FeatureStats(max_items=num_items, **stats_kwargs)
    progress = opts.progress.sub(tag="dataset features", num_items=num_items)
    detector = get_feature_detector(opts, detector_url)
    per_rank = -(-num_items // opts.num_gpus)
    item_subset = [(i * opts.num_gpus + opts.rank) % num_items for i in range(per_rank)]
    loader = torch.utils.data.DataLoader(
        dataset=dataset, sampler=item_subset, batch_size=batch_size, **data_loader_kwargs
    )
    with torch.no_grad():
        for images, _labels in loader:
            features = detector(detector_input(opts, detector, detector_url, images.to(opts.device)), **detector_kwargs)
            stats.append_torch(features, num_gpus=opts.num_gpus)
            progress.update(stats.num_items)
    opts.provenance.update(num_real=stats.num_items, resize=opts.resize)

    if cache_file is not None and opts.rank == 0:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        stats.save(cache_file)
    return stats


def images_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 of the same shape via clamp(x * 127.5 + 128, 0, 255), truncated toward
    zero: the one conversion the metrics, the tools' PNGs and the labs use."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def generated_images_uint8(G: torch.nn.Module, z: torch.Tensor, c: torch.Tensor, G_kwargs: dict) -> torch.Tensor:
    """G(z, c) as uint8 [N, C, H, W] (`images_to_uint8`)."""
    return images_to_uint8(G(z, c, **G_kwargs))


def compute_feature_stats_for_generator(
    opts: MetricOptions,
    detector_url: str,
    detector_kwargs: dict,
    batch_size: int = 64,
    batch_gen: int | None = None,
    **stats_kwargs: Any,
) -> FeatureStats:
    """Detector features of generated images until `stats_kwargs['max_items']` are collected.

    Per step each rank makes `batch_size` images in calls of `batch_gen`: z ~ N(0, I) (torch RNG) and labels
    of random dataset items (NumPy RNG). No seeding here: results follow the global RNG state.
    `batch_gen` defaults to 4 on a GPU (the original's guard against running out of GPU memory) and to
    `batch_size` on the CPU, where G's per-call overhead dominates small calls (a 2,000-image pass of the
    demo's tiny G: 4.9-5.6 s in calls of 4, 3.1-3.4 s in calls of 64). The grouping changes which random
    draws make which image, not the distribution the images come from.
    """
    if batch_gen is None:
        batch_gen = 4 if opts.device.type == "cuda" else batch_size
    if batch_size % batch_gen != 0:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of batch_gen ({batch_gen})")
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    labels = iterate_random_labels(opts, batch_gen)
    stats = FeatureStats(**stats_kwargs)
    if stats.max_items is None:
        raise ValueError("compute_feature_stats_for_generator needs max_items")
    progress = opts.progress.sub(tag="generator features", num_items=stats.max_items)
    detector = get_feature_detector(opts, detector_url)
    with torch.no_grad():
        while not stats.is_full():
            images = []
            for _ in range(batch_size // batch_gen):
                z = torch.randn([batch_gen, G.z_dim], device=opts.device)
                images.append(generated_images_uint8(G, z, next(labels), opts.G_kwargs))
            features = detector(detector_input(opts, detector, detector_url, torch.cat(images)), **detector_kwargs)
            stats.append_torch(features, num_gpus=opts.num_gpus)
            progress.update(stats.num_items)
    opts.provenance.update(num_gen=stats.num_items, resize=opts.resize)
    return stats
