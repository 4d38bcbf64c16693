"""Image datasets for training and metrics.

A dataset is a directory or a ``.zip`` of same-size square images (PNG, JPEG or any
other Pillow format; 1 or 3 channels, 8 bits each) with optional labels in a root
``dataset.json`` (``{"labels": [[relative_path, label], ...]}`` or ``{"labels": null}``;
a label is an int class index or a list of floats). ``dataset_tool.py`` writes this layout.

Every problem with a dataset's contents raises ``OSError`` (``IOError``) with a message
naming the file and the fix, so command-line tools can report them uniformly.
"""

import json
import os
import zipfile
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch

import dnnlib

MAX_LABELS_JSON_BYTES = 256 * 2**20  # dataset.json larger than this (uncompressed) is refused before reading.
MAX_CLASSES = 100_000  # Class indices must be below this: G's label embedding has one weight row per class.

PIL.Image.init()
IMAGE_EXTENSIONS = frozenset(PIL.Image.EXTENSION)  # lowercase, with the dot: '.png', '.jpg', ...


def is_image_file(fname: str) -> bool:
    """True if the file name has an extension registered with Pillow (case-insensitive)."""
    return os.path.splitext(fname)[1].lower() in IMAGE_EXTENSIONS


def is_zip_path(path: str) -> bool:
    """True if the path names a zip archive (ends in ``.zip``, case-insensitive)."""
    return path.lower().endswith(".zip")


class Dataset(torch.utils.data.Dataset):
    """Base class: subset selection, x-flip doubling and labels over ``raw_shape[0]`` raw images.

    Subclasses implement ``_load_raw_image(raw_idx) -> uint8 [C, H, W]`` and
    ``_load_raw_labels() -> int64 [N] | float32 [N, L] | None``.
    """

    def __init__(
        self,
        name: str,  # Name of the dataset (run-directory and metric-cache names).
        raw_shape: Sequence[int],  # Shape of the raw image data [N, C, H, W].
        max_size: int | None = None,  # Keep at most this many raw images (a seeded random subset).
        use_labels: bool = False,  # Load labels from the subclass?
        xflip: bool = False,  # Append horizontally flipped copies (doubles the length)?
        random_seed: int = 0,  # Seed of the subset selection.
    ):
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be None or at least 1, got {max_size}")
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._raw_labels = None
        self._label_shape = None

        # Subset: a fixed-seed random choice, kept in ascending order.
        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:
            np.random.RandomState(random_seed).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])

        # X-flip: the second half repeats the indices, flipped.
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    def _get_raw_labels(self) -> np.ndarray:
        """Labels of all raw images: int64 [N] class indices, float32 [N, L] vectors, or float32 [N, 0]."""
        if self._raw_labels is None:
            raw_labels = self._load_raw_labels() if self._use_labels else None
            if raw_labels is None:
                raw_labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            assert raw_labels.shape[0] == self._raw_shape[0]
            assert (raw_labels.dtype == np.int64 and raw_labels.ndim == 1) or (
                raw_labels.dtype == np.float32 and raw_labels.ndim == 2
            )
            self._raw_labels = raw_labels
        return self._raw_labels

    def close(self) -> None:
        """Release open file handles (they are reopened on demand)."""

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        raise NotImplementedError

    def _load_raw_labels(self) -> np.ndarray | None:
        raise NotImplementedError

    def __getstate__(self):
        # Cached labels are dropped and reloaded lazily in the receiving process.
        return dict(self.__dict__, _raw_labels=None)

    def __del__(self):
        try:
            self.close()
        except Exception:  # Interpreter shutdown may have torn down modules already.
            pass

    def __len__(self) -> int:
        return self._raw_idx.size

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (image uint8 [C, H, W], a fresh copy; label float32 [label_dim])."""
        image = self._load_raw_image(self._raw_idx[idx])
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """Label of item ``idx`` as float32 [label_dim]: one-hot for class indices, else the vector."""
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            label = onehot
        return label.copy()

    def get_details(self, idx: int) -> dnnlib.EasyDict:
        """raw_idx (index into the raw images), xflip (bool) and raw_label (the unconverted label)."""
        raw_idx = int(self._raw_idx[idx])
        return dnnlib.EasyDict(
            raw_idx=raw_idx,
            xflip=(int(self._xflip[idx]) != 0),
            raw_label=self._get_raw_labels()[raw_idx].copy(),
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> list[int]:
        """[C, H, W]."""
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        """Image side length in pixels; the images must be square."""
        _, height, width = self.image_shape
        if height != width:
            raise OSError(
                f'Dataset "{self._name}" has non-square {width}x{height} images; '
                "make them square with dataset_tool.py --transform=center-crop --width=N --height=N"
            )
        return width

    @property
    def label_shape(self) -> list[int]:
        """[num_classes] for class indices (max index + 1), the vector shape for float labels, [0] without."""
        if self._label_shape is None:
            raw_labels = self._get_raw_labels()
            if raw_labels.dtype == np.int64:
                self._label_shape = [int(np.max(raw_labels)) + 1]
            else:
                self._label_shape = list(raw_labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        assert len(self.label_shape) == 1
        return self.label_shape[0]

    @property
    def has_labels(self) -> bool:
        return any(dim != 0 for dim in self.label_shape)

    @property
    def has_onehot_labels(self) -> bool:
        return self._get_raw_labels().dtype == np.int64


class ImageFolderDataset(Dataset):
    """Images in a directory (searched recursively) or a zip, sorted by relative path."""

    def __init__(
        self,
        path: str,  # Path to a directory or a .zip file.
        resolution: int | None = None,  # Expected side length; None = take it from the images.
        **super_kwargs,  # max_size, use_labels, xflip, random_seed (see Dataset).
    ):
        self._path = path
        self._zipfile = None
        self._zipfile_pid = None

        if os.path.isdir(path):
            self._type = "dir"
            self._all_fnames = {
                os.path.relpath(os.path.join(root, fname), start=path)
                for root, _dirs, files in os.walk(path)
                for fname in files
            }
        elif os.path.isfile(path) and is_zip_path(path):
            self._type = "zip"
            self._all_fnames = set(self._get_zipfile().namelist())
        elif not os.path.exists(path):
            raise OSError(f'Path must point to a directory or zip: "{path}" does not exist')
        else:
            raise OSError(
                f'Path must point to a directory or zip: "{path}" is neither; '
                "convert it with dataset_tool.py --source=... --dest=NAME.zip"
            )

        self._image_fnames = sorted(fname for fname in self._all_fnames if is_image_file(fname))
        if len(self._image_fnames) == 0:
            raise OSError(
                f'No image files found in the specified path "{path}"; supported extensions include .png and .jpg'
            )

        name = os.path.splitext(os.path.basename(path.rstrip("/\\")))[0]
        first_image = self._decode_image(self._image_fnames[0])
        if first_image.dtype != np.uint8:
            raise OSError(
                f'Image "{self._image_fnames[0]}" in "{path}" is {first_image.dtype}, not 8 bits per '
                "channel; convert the dataset with dataset_tool.py"
            )
        raw_shape = [len(self._image_fnames)] + list(first_image.shape)
        if resolution is not None and (raw_shape[2] != resolution or raw_shape[3] != resolution):
            raise OSError(
                f'Image files do not match the specified resolution: "{path}" holds '
                f"{raw_shape[3]}x{raw_shape[2]} images, resolution={resolution} was asked for; "
                "resize them with dataset_tool.py --width --height or drop the resolution option"
            )
        super().__init__(name=name, raw_shape=raw_shape, **super_kwargs)
        if self._use_labels:
            self._get_raw_labels()  # Report label problems now rather than mid-training.

    def _get_zipfile(self) -> zipfile.ZipFile:
        """The zip handle of the current process (a forked worker reopens its own)."""
        assert self._type == "zip"
        if self._zipfile is None or self._zipfile_pid != os.getpid():
            try:
                self._zipfile = zipfile.ZipFile(self._path)
            except zipfile.BadZipFile as err:
                raise OSError(
                    f'"{self._path}" is not a valid zip file ({err}); recreate it with dataset_tool.py'
                ) from err
            self._zipfile_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname: str):
        if self._type == "dir":
            return open(os.path.join(self._path, fname), "rb")
        return self._get_zipfile().open(fname, "r")

    def close(self) -> None:
        if self._zipfile is not None and self._zipfile_pid == os.getpid():
            self._zipfile.close()
        self._zipfile = None

    def __getstate__(self):
        return dict(super().__getstate__(), _zipfile=None, _zipfile_pid=None)

    def _decode_image(self, fname: str) -> np.ndarray:
        """Decodes one file without mode conversion: [C, H, W] (grayscale gets C = 1)."""
        with self._open_file(fname) as file:
            try:
                image = np.array(PIL.Image.open(file))
            except (OSError, ValueError, SyntaxError, EOFError, PIL.Image.DecompressionBombError) as err:
                raise OSError(
                    f'Cannot decode image "{fname}" in "{self._path}" ({err}); replace or remove the file'
                ) from err
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        return image.transpose(2, 0, 1)

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        fname = self._image_fnames[raw_idx]
        image = self._decode_image(fname)
        if list(image.shape) != self.image_shape or image.dtype != np.uint8:
            raise OSError(
                f'Image "{fname}" in "{self._path}" is {image.dtype} with shape [C, H, W] = '
                f"{list(image.shape)}, but the dataset's first image is uint8 {self.image_shape}; "
                "all images must share size and channel count: convert the dataset with dataset_tool.py"
            )
        return image

    def _load_raw_labels(self) -> np.ndarray | None:
        fname = "dataset.json"
        if fname not in self._all_fnames:
            return None
        where = f'"{fname}" in "{self._path}"'
        if self._type == "dir":
            size = os.path.getsize(os.path.join(self._path, fname))
        else:
            size = self._get_zipfile().getinfo(fname).file_size
        with self._open_file(fname) as file:
            labels = read_labels_json(file, size, where)
        if labels is None:
            return None
        try:
            labels = dict(labels)
        except (TypeError, ValueError) as err:
            raise OSError(f'{where}: "labels" must be a list of [path, label] pairs ({err})') from err
        try:
            ordered = [labels[image_fname.replace("\\", "/")] for image_fname in self._image_fnames]
        except KeyError as err:
            raise OSError(
                f"{where} has no label for image {err}; add one for every image, "
                "or train without labels (use_labels=False)"
            ) from err
        return labels_to_array(ordered, where)


def read_labels_json(file, size: int, where: str) -> list | None:
    """The "labels" entry of a dataset.json file of `size` bytes (uncompressed), read from the binary `file`.

    Files over MAX_LABELS_JSON_BYTES are refused before reading (for a zip entry `size` is its recorded
    uncompressed size), and at most that many bytes are ever inflated, so a small zip cannot expand into
    gigabytes of memory. Raises OSError naming `where` and the expected layout.
    """
    limit = MAX_LABELS_JSON_BYTES
    if size > limit:
        raise OSError(
            f"{where} is {size:,} bytes; dataset.json may hold at most {limit:,} bytes of labels "
            "(one [path, label] pair per image); recreate it with dataset_tool.py"
        )
    data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{where} inflates to more than {limit:,} bytes; recreate it with dataset_tool.py")
    try:
        return json.loads(data)["labels"]
    except (ValueError, KeyError, TypeError) as err:
        raise OSError(
            f'Cannot read {where} ({err!r}); it must hold {{"labels": [[path, label], ...]}} or {{"labels": null}}'
        ) from err


def label_error(label) -> str | None:
    """Why one label is invalid (None if valid): a class index must be an integer in [0, MAX_CLASSES), a vector a
    list of finite numbers. Booleans and strings are neither."""
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        if not (np.isfinite(label) and label == int(label) and label >= 0):
            return f"class labels must be integers >= 0, got {label!r} (use a list of floats for a label vector)"
        if label >= MAX_CLASSES:
            return (
                f"class label {int(label)} is too large: at most {MAX_CLASSES} classes (0-{MAX_CLASSES - 1}), "
                "since a class becomes a one-hot vector of max + 1 entries; number the classes 0..K-1"
            )
        return None
    if isinstance(label, (list, tuple)):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in label):
            return None
        return f"label vector {str(label)[:80]} must hold only finite numbers"
    return f"label {str(label)[:80]!r} must be an int class index or a list of numbers"


def labels_to_array(labels: list, where: str) -> np.ndarray:
    """int64 [N] from class indices (ints, or floats with integral values), float32 [N, L] from vectors.

    Raises OSError naming `where` for an invalid label (see `label_error`), mixed kinds or vectors of unequal
    length.
    """
    for label in labels:
        error = label_error(label)
        if error is not None:
            raise OSError(f"{where}: {error}")
    kinds = {isinstance(label, (list, tuple)) for label in labels}
    lengths = {len(label) for label in labels if isinstance(label, (list, tuple))}
    if len(kinds) > 1 or len(lengths) > 1:
        raise OSError(
            f"{where}: labels must be all class indices or all vectors of one length "
            f"(found {'both kinds' if len(kinds) > 1 else f'vector lengths {sorted(lengths)[:5]}'})"
        )
    if kinds == {True}:
        return np.array(labels, dtype=np.float32).reshape(len(labels), next(iter(lengths)))
    return np.array(labels, dtype=np.float64).astype(np.int64)
