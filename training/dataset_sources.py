"""Readers of the inputs that ``dataset_tool.py`` converts into training datasets.

``open_source(path)`` detects the kind of input and returns ``(num_images, items)``, where
``items`` lazily yields ``(name, image, label)``: ``name`` identifies the image in error
messages, ``image`` is uint8 [H, W] (grayscale) or [H, W, 3] (RGB), and ``label`` is an int
class index, a list of floats, or None. Problems raise ``SourceError`` naming the file and the fix.
"""

import gzip
import io
import os
import pickle
import struct
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
import PIL.Image

from training.dataset import is_image_file, read_labels_json

SourceItem = tuple[str, np.ndarray, Any]
Source = tuple[int, Iterator[SourceItem]]

CIFAR10_NAME = "cifar-10-python.tar.gz"
MNIST_IMAGES_SUFFIX = "-images-idx3-ubyte.gz"
MNIST_LABELS_SUFFIX = "-labels-idx1-ubyte.gz"
SUPPORTED_SOURCES = (
    "an image folder, a folder whose name ends in _lmdb (LSUN), a .zip of images, "
    f"{CIFAR10_NAME}, or an MNIST-format *{MNIST_IMAGES_SUFFIX}"
)


class SourceError(ValueError):
    """An input that cannot be converted; the message names the file and the fix."""


def open_source(source: str) -> Source:
    """Detects the kind of ``source`` and opens it; see the module docstring for the result."""
    basename = os.path.basename(source.rstrip("/\\"))
    if os.path.isdir(source):
        if basename.endswith("_lmdb"):
            return _open_lmdb(source)
        return _open_image_folder(source)
    if os.path.isfile(source):
        if basename == CIFAR10_NAME:
            return _open_cifar10(source)
        if basename.endswith(MNIST_IMAGES_SUFFIX):
            return _open_mnist(source)
        if basename.rsplit(".", 1)[-1] == "zip":
            return _open_image_zip(source)
        raise SourceError(f"Unknown input file type: {source}; --source must be {SUPPORTED_SOURCES}")
    raise SourceError(f"Missing input file or directory: {source}")


def decode_image(file: BinaryIO, name: str) -> np.ndarray:
    """Decodes an 8-bit grayscale (mode L) or RGB image without conversion: uint8 [H, W] or [H, W, 3]."""
    try:
        with PIL.Image.open(file) as image:
            mode = image.mode
            array = np.array(image) if mode in ("L", "RGB") else None
    except (OSError, ValueError, SyntaxError, EOFError, PIL.Image.DecompressionBombError) as err:
        raise SourceError(f"Cannot read image {name} ({err}); replace or remove the file") from err
    if array is None:
        raise SourceError(
            f"Input images must be stored as RGB or grayscale: {name} has Pillow mode {mode}; "
            'convert it first, e.g. Image.open(f).convert("RGB").save(f)'
        )
    return array


def _parse_labels_json(file: BinaryIO, size: int, name: str) -> dict[str, Any] | None:
    """{relative path: label} from a dataset.json file of `size` bytes, or None for ``{"labels": null}``."""
    try:
        labels = read_labels_json(file, size, name)
        return None if labels is None else dict(labels)
    except (OSError, ValueError, TypeError) as err:
        raise SourceError(f"Cannot read labels from {name}: {err}") from err


def _open_image_folder(source_dir: str) -> Source:
    rel_paths = [
        os.path.relpath(os.path.join(root, fname), start=source_dir)
        for root, _dirs, files in os.walk(source_dir)
        for fname in files
        if is_image_file(fname)
    ]
    rel_paths.sort(key=lambda rel_path: rel_path.split(os.sep))
    labels = None
    labels_path = os.path.join(source_dir, "dataset.json")
    if os.path.isfile(labels_path):
        with open(labels_path, "rb") as file:
            labels = _parse_labels_json(file, os.path.getsize(labels_path), labels_path)

    def iterate() -> Iterator[SourceItem]:
        for rel_path in rel_paths:
            path = os.path.join(source_dir, rel_path)
            with open(path, "rb") as file:
                image = decode_image(file, path)
            yield path, image, (labels or {}).get(rel_path.replace(os.sep, "/"))

    return len(rel_paths), iterate()


def _open_image_zip(source_zip: str) -> Source:
    def open_zip() -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(source_zip)
        except zipfile.BadZipFile as err:
            raise SourceError(f"{source_zip} is not a valid zip file ({err}); re-download or recreate it") from err

    with open_zip() as archive:
        member_names = sorted(name for name in archive.namelist() if is_image_file(name))
        labels = None
        if "dataset.json" in archive.namelist():
            with archive.open("dataset.json") as file:
                size = archive.getinfo("dataset.json").file_size
                labels = _parse_labels_json(file, size, f"{source_zip}/dataset.json")

    def iterate() -> Iterator[SourceItem]:
        with open_zip() as archive:
            for member_name in member_names:
                with archive.open(member_name) as file:
                    image = decode_image(file, f"{source_zip}/{member_name}")
                yield f"{source_zip}/{member_name}", image, (labels or {}).get(member_name)

    return len(member_names), iterate()


def _open_lmdb(lmdb_dir: str) -> Source:
    try:
        import lmdb
    except ImportError as err:
        raise SourceError(
            f"{lmdb_dir} is an LMDB folder (its name ends in _lmdb); "
            "reading it needs the lmdb package: pip install lmdb"
        ) from err

    def open_env():
        try:
            return lmdb.open(lmdb_dir, readonly=True, lock=False, max_readers=1)
        except lmdb.Error as err:
            raise SourceError(
                f"Cannot open LMDB database {lmdb_dir} ({err}); point --source at the folder holding data.mdb"
            ) from err

    with open_env() as env:
        num_entries = env.stat()["entries"]

    def iterate() -> Iterator[SourceItem]:
        with open_env() as env, env.begin(write=False) as txn:
            for key, value in txn.cursor():
                name = f"{lmdb_dir}[{key.decode(errors='replace')}]"
                try:
                    with PIL.Image.open(io.BytesIO(value)) as image:
                        array = np.array(image.convert("RGB"))
                except (OSError, ValueError, SyntaxError, EOFError, PIL.Image.DecompressionBombError) as err:
                    print(f"Skipping {name}: {err}", file=sys.stderr)  # LSUN has a few broken records.
                    continue
                yield name, array, None

    return num_entries, iterate()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only, so a tarball cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Callable:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _open_cifar10(tarball: str) -> Source:
    images, labels = [], []
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for batch in range(1, 6):
                member_name = f"cifar-10-batches-py/data_batch_{batch}"
                with tar.extractfile(member_name) as file:
                    data = _ArrayUnpickler(file, encoding="latin1").load()
                images.append(np.asarray(data["data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels.append(np.asarray(data["labels"]))
    except (OSError, EOFError, KeyError, ValueError, TypeError, tarfile.TarError, pickle.UnpicklingError) as err:
        raise SourceError(
            f"Cannot read {tarball} as the CIFAR-10 python tarball ({err!r}); download cifar-10-python.tar.gz again"
        ) from err
    images, labels = np.concatenate(images), np.concatenate(labels)
    if images.dtype != np.uint8 or len(labels) != len(images) or not np.isin(labels, np.arange(10)).all():
        raise SourceError(f"{tarball} does not hold uint8 images with labels 0-9; download it again")

    def iterate() -> Iterator[SourceItem]:
        for idx in range(len(images)):
            yield f"{tarball}[{idx}]", images[idx], int(labels[idx])

    return len(images), iterate()


def _read_idx_gz(path: str, magic: int, header_dims: int) -> tuple[tuple[int, ...], np.ndarray]:
    """(dims, data) of a gzipped IDX file: a big-endian header (magic, dims...) then uint8 data."""
    header_size = 4 * (1 + header_dims)
    try:
        with gzip.open(path, "rb") as file:
            content = file.read()
        file_magic, *dims = struct.unpack(f">{1 + header_dims}I", content[:header_size])
    except (OSError, EOFError, struct.error) as err:
        raise SourceError(f"Cannot read {path} as a gzipped MNIST IDX file ({err}); download it again") from err
    if file_magic != magic or len(content) != header_size + int(np.prod(dims)):
        raise SourceError(
            f"{path} is not a valid MNIST IDX file (magic {file_magic}, expected {magic}, "
            "or wrong length); download it again"
        )
    return tuple(dims), np.frombuffer(content, dtype=np.uint8, offset=header_size)


def _open_mnist(images_gz: str) -> Source:
    labels_gz = images_gz[: -len(MNIST_IMAGES_SUFFIX)] + MNIST_LABELS_SUFFIX
    if not os.path.isfile(labels_gz):
        raise SourceError(f"MNIST labels file {labels_gz} not found; put it beside {images_gz}")
    (num_images, rows, cols), pixels = _read_idx_gz(images_gz, magic=2051, header_dims=3)
    (num_labels,), labels = _read_idx_gz(labels_gz, magic=2049, header_dims=1)
    images = pixels.reshape(num_images, rows, cols)
    if num_labels != num_images or not np.isin(labels, np.arange(10)).all():
        raise SourceError(f"{labels_gz} must hold one label in 0-9 per image of {images_gz}; download them again")
    if (rows, cols) == (28, 28):
        images = np.pad(images, [(0, 0), (2, 2), (2, 2)])  # Zero border: 32x32.

    def iterate() -> Iterator[SourceItem]:
        for idx in range(num_images):
            yield f"{images_gz}[{idx}]", images[idx], int(labels[idx])

    return num_images, iterate()
