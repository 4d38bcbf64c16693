"""Convert an image folder, zip, LSUN LMDB, CIFAR-10 or MNIST-format files into a training dataset.

The output (a folder or an uncompressed ``.zip``) holds ``00000/img00000000.png`` ... (1000
images per subfolder, PNGs without compression) and ``dataset.json`` with the labels; see
``docs/data.md``. It is written under a temporary name and moved into place only when complete.

    python dataset_tool.py --source=cifar-10-python.tar.gz --dest=datasets/cifar10-32x32.zip
"""

import contextlib
import itertools
import json
import os
import zipfile
from collections.abc import Callable, Iterator

import click
import numpy as np
import PIL.Image

import dnnlib
from dnnlib import atomic
from dnnlib.images import encode_png
from dnnlib.progress import ProgressBar
from training.dataset import is_zip_path, label_error, labels_to_array
from training.dataset_sources import SourceError, open_source

RESIZE_FILTERS = {"box": PIL.Image.Resampling.BOX, "lanczos": PIL.Image.Resampling.LANCZOS}
Transform = Callable[[np.ndarray], np.ndarray | None]


def _resize(image: np.ndarray, width: int, height: int, resample: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] resized with Pillow to [height, width(, 3)]."""
    return np.array(PIL.Image.fromarray(image).resize((width, height), resample))


def make_transform(transform: str | None, width: int | None, height: int | None, resize_filter: str) -> Transform:
    """Image -> transformed image, or None when the image is dropped (center-crop-wide only)."""
    resample = RESIZE_FILTERS[resize_filter]

    def scale(image: np.ndarray) -> np.ndarray:
        size = (width or image.shape[1], height or image.shape[0])
        if size == (image.shape[1], image.shape[0]):
            return image
        return _resize(image, *size, resample)

    def center_crop(image: np.ndarray) -> np.ndarray:
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        return _resize(image[top : top + side, left : left + side], width, height, resample)

    def center_crop_wide(image: np.ndarray) -> np.ndarray | None:
        h, w = image.shape[:2]
        crop_h = int(np.round(width * h / w))
        if w < width or crop_h < height:
            return None
        image = _resize(image[(h - crop_h) // 2 : (h + crop_h) // 2], width, height, resample)
        canvas = np.zeros((width, width) + image.shape[2:], dtype=np.uint8)
        top = (width - height) // 2
        canvas[top : top + height] = image
        return canvas

    if transform is None:
        return scale
    if width is None or height is None:
        raise click.ClickException(f"must specify --width and --height when using {transform} transform")
    return {"center-crop": center_crop, "center-crop-wide": center_crop_wide}[transform]


def _image_attributes(image: np.ndarray) -> dict[str, int]:
    return dict(width=image.shape[1], height=image.shape[0], channels=image.shape[2] if image.ndim == 3 else 1)


def _check_first_image(attrs: dict[str, int], name: str) -> None:
    width, height = attrs["width"], attrs["height"]
    if width != height:
        raise click.ClickException(
            f"Image dimensions after scale and crop are required to be square.  Got {width}x{height} from {name}; "
            "use --transform=center-crop (or --width=N --height=N) to make them square"
        )
    if width & (width - 1) != 0:
        side = 1 << width.bit_length()
        raise click.ClickException(
            f"Image width/height after scale and crop are required to be power-of-two.  Got {width}x{height} from "
            f"{name}; resize them, e.g. --width={side} --height={side}"
        )


def _check_same_attributes(dataset_attrs: dict[str, int], attrs: dict[str, int], name: str, fname: str) -> None:
    if attrs != dataset_attrs:
        lines = [f"  dataset {k}/cur image {k}: {dataset_attrs[k]}/{attrs[k]}" for k in dataset_attrs]
        raise click.ClickException(
            f"Image {name} (output {fname}) attributes must be equal across all images of the dataset.  Got:\n"
            + "\n".join(lines)
            + "\nUse --width and --height (and --transform) to give all images one size."
        )


def _check_destination(dest: str) -> None:
    """One-line errors for a destination that exists, is not empty, or lies under a file."""
    if is_zip_path(dest):
        if os.path.exists(dest):
            raise click.ClickException(f"--dest {dest} already exists; delete it or choose another file name")
    elif os.path.isdir(dest) and os.listdir(dest):
        raise click.ClickException(f"--dest folder must be empty: {dest}; delete its contents or choose another")
    elif os.path.exists(dest) and not os.path.isdir(dest):
        raise click.ClickException(f"--dest {dest} exists and is not a folder; choose another name")
    parent = os.path.dirname(os.path.abspath(dest))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise click.ClickException(
            f"--dest {dest} lies under {parent}, which is a file, not a folder; choose another path"
        )


@contextlib.contextmanager
def atomic_destination(dest: str) -> Iterator[Callable[[str, bytes], None]]:
    """Yields ``write(archive_fname, data)``; the output appears at ``dest`` only if the block succeeds.

    Files go to a hidden temp zip or folder beside ``dest`` (``dnnlib.atomic``), renamed to ``dest`` at the
    end and deleted on any error, Ctrl-C or SIGTERM. A failed write (full disk, no permission) is one line.
    """
    dest = dest.rstrip("/\\") or dest
    _check_destination(dest)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    except OSError as err:
        raise click.ClickException(atomic.describe_write_error(dest, err) + "; nothing was written") from None
    try:
        with dnnlib.util.sigterm_as_interrupt(), atomic.atomic_path(dest) as tmp:
            if is_zip_path(dest):
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                    yield archive.writestr
            else:
                os.makedirs(tmp)

                def write_file(archive_fname: str, data: bytes) -> None:
                    path = os.path.join(tmp, archive_fname)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as file:
                        file.write(data)

                yield write_file
    except atomic.WriteError as err:
        raise click.ClickException(f"{err}; nothing was written") from None
    except KeyboardInterrupt as err:
        raise click.ClickException(f"interrupted ({str(err) or 'Ctrl-C'}); nothing was written to {dest}") from None


def convert_dataset(source: str, dest: str, max_images: int | None, transform: Transform) -> int:
    """Writes the dataset; returns the number of images written."""
    try:
        num_images, items = open_source(source)
    except SourceError as err:
        raise click.ClickException(str(err)) from err
    if max_images is not None:
        num_images, items = min(num_images, max_images), itertools.islice(items, max_images)
    if num_images == 0:
        raise click.ClickException(f"No images found in {source}; supported image extensions include .png, .jpg")

    dataset_attrs = None
    labels = []
    with atomic_destination(dest) as write, ProgressBar(num_images, desc="Converting", unit="img") as progress:
        try:
            for idx, (name, image, label) in enumerate(items):
                progress.update(1)
                idx_str = f"{idx:08d}"
                archive_fname = f"{idx_str[:5]}/img{idx_str}.png"
                image = transform(image)
                if image is None:
                    continue
                attrs = _image_attributes(image)
                if dataset_attrs is None:
                    _check_first_image(attrs, name)
                    dataset_attrs = attrs
                _check_same_attributes(dataset_attrs, attrs, name, archive_fname)
                if label is not None and (error := label_error(label)) is not None:
                    raise click.ClickException(f"Image {name}: {error}")
                write(archive_fname, encode_png(image, compress_level=0))
                labels.append([archive_fname, label] if label is not None else None)
        except SourceError as err:
            raise click.ClickException(str(err)) from err
        if not labels:
            raise click.ClickException(
                f"None of the {num_images} images of {source} was kept: center-crop-wide drops "
                "images narrower than --width or shorter than --height; lower them"
            )
        all_labeled = all(entry is not None for entry in labels)
        if all_labeled:
            try:
                labels_to_array([label for _fname, label in labels], f"labels of {source}")
            except OSError as err:
                raise click.ClickException(str(err)) from None
        write("dataset.json", json.dumps({"labels": labels if all_labeled else None}).encode("utf-8"))
    return len(labels)


@click.command()
@click.option("--source", help="Input directory or archive name", metavar="PATH", type=str, required=True)
@click.option("--dest", help="Output directory or archive name (*.zip)", metavar="PATH", type=str, required=True)
@click.option("--max-images", help="Output only up to `max-images` images", type=click.IntRange(min=1), default=None)
@click.option(
    "--resize-filter",
    help="Filter to use when resizing images for output resolution",
    type=click.Choice(list(RESIZE_FILTERS)),
    default="lanczos",
    show_default=True,
)
@click.option("--transform", help="Input crop/resize mode", type=click.Choice(["center-crop", "center-crop-wide"]))
@click.option("--width", help="Output width", type=click.IntRange(min=1))
@click.option("--height", help="Output height", type=click.IntRange(min=1))
def main(
    source: str,
    dest: str,
    max_images: int | None,
    resize_filter: str,
    transform: str | None,
    width: int | None,
    height: int | None,
) -> None:
    """Convert an image dataset into the format used by train.py and calc_metrics.py.

    \b
    --source is one of:
      a folder of images (searched recursively; labels from its dataset.json, if any)
      a .zip of images (labels from its dataset.json, if any)
      an LSUN LMDB folder whose name ends in _lmdb (needs: pip install lmdb)
      cifar-10-python.tar.gz (the CIFAR-10 python version; labels are the classes)
      *-images-idx3-ubyte.gz in the MNIST format (MNIST, Fashion-MNIST; the matching
        *-labels-idx1-ubyte.gz must lie beside it; 28x28 images are padded to 32x32)

    \b
    --dest is a folder (must be empty or new) or a *.zip file (must not exist).
    Images are written as 00000/img00000000.png ... with dataset.json holding the labels.
    All output images must be square, of one power-of-two size, and RGB or grayscale:
    use --width/--height to resize and --transform to crop.

    \b
    Examples:
      python dataset_tool.py --source=~/downloads/cifar-10-python.tar.gz --dest=~/datasets/cifar10.zip
      python dataset_tool.py --source=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \\
          --dest=~/datasets/fashion-mnist-32x32.zip
      python dataset_tool.py --source=~/photos --dest=~/datasets/photos256.zip \\
          --transform=center-crop --width=256 --height=256
    """
    if dest == "":
        raise click.UsageError("--dest output filename or directory must not be an empty string")
    convert = make_transform(transform, width, height, resize_filter)
    convert_dataset(os.path.expanduser(source), os.path.expanduser(dest), max_images, convert)


if __name__ == "__main__":
    main()
