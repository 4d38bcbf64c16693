"""dataset_tool.py: every source kind, transforms against Pillow, output format, atomicity and bad input."""

import errno
import gzip
import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import tarfile
import zipfile

import click
import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
from dnnlib import atomic
from tests.conftest import REPO_ROOT
from training.dataset import ImageFolderDataset

FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def _run(*args: str):
    return CliRunner().invoke(dataset_tool.main, list(args))


def _random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = [height, width] if channels == 1 else [height, width, channels]
    return np.random.RandomState(seed).randint(0, 256, size=shape, dtype=np.uint8)


def _save(path, image: np.ndarray, **save_kwargs) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(image).save(path, **save_kwargs)


def _read_output(dest: str) -> dict[str, bytes]:
    """{archive name: bytes} of a zip or folder dataset."""
    if dest.endswith(".zip"):
        with zipfile.ZipFile(dest) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    files = {}
    for root, _dirs, names in os.walk(dest):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                files[os.path.relpath(os.path.join(root, name), dest).replace(os.sep, "/")] = file.read()
    return files


def _decode(data: bytes) -> np.ndarray:
    return np.array(PIL.Image.open(io.BytesIO(data)))


def _assert_ok(result) -> None:
    assert result.exit_code == 0, result.output + repr(result.exception)


def _assert_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output + repr(result.exception)
    for fragment in fragments:
        assert fragment in result.output, result.output


# ------------------------------------------------------------------------------------------- sources


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_folder_source_with_labels(tmp_path, dest_name):
    images = {
        "b/x.png": _random_image(8, 8, seed=1),
        "a.png": _random_image(8, 8, seed=2),
        "b.png": _random_image(8, 8, seed=3),
        "a/c/d.png": _random_image(8, 8, seed=4),
    }
    for name, image in images.items():
        _save(tmp_path / "src" / name, image)
    (tmp_path / "src" / "notes.txt").write_text("ignored")
    (tmp_path / "src" / "dataset.json").write_text(
        json.dumps({"labels": [["a.png", 0], ["b.png", 1], ["b/x.png", 2], ["a/c/d.png", 3]]})
    )
    dest = str(tmp_path / dest_name)
    _assert_ok(_run("--source", str(tmp_path / "src"), "--dest", dest))

    order = ["a/c/d.png", "a.png", "b/x.png", "b.png"]  # Sorted by path components: ('a', ...) < ('a.png',).
    names = [f"00000/img{i:08d}.png" for i in range(4)]
    files = _read_output(dest)
    assert sorted(files) == sorted(names + ["dataset.json"])
    assert files["dataset.json"].decode() == (
        '{"labels": [["00000/img00000000.png", 3], ["00000/img00000001.png", 0], '
        '["00000/img00000002.png", 2], ["00000/img00000003.png", 1]]}'
    )
    for name, src_name in zip(names, order):
        np.testing.assert_array_equal(_decode(files[name]), images[src_name])
        assert len(files[name]) > 8 * 8 * 3  # compress_level=0: raw pixels plus headers.
    if dest.endswith(".zip"):
        with zipfile.ZipFile(dest) as archive:
            assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    dataset = ImageFolderDataset(dest, use_labels=True)
    assert dataset.label_dim == 4 and dataset.resolution == 8


def test_zip_source_grayscale_max_images_and_partial_labels(tmp_path):
    src = tmp_path / "src.zip"
    images = [_random_image(4, 4, channels=1, seed=i) for i in range(3)]
    with zipfile.ZipFile(src, "w") as archive:
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            PIL.Image.fromarray(image).save(buffer, format="png")
            archive.writestr(f"img{i}.png", buffer.getvalue())
        archive.writestr("dataset.json", json.dumps({"labels": [["img0.png", [0.5, 1.5]]]}))
    _assert_ok(_run("--source", str(src), "--dest", str(tmp_path / "all.zip")))
    files = _read_output(str(tmp_path / "all.zip"))
    assert json.loads(files["dataset.json"]) == {"labels": None}  # Not every image had a label.
    for i, image in enumerate(images):
        decoded = PIL.Image.open(io.BytesIO(files[f"00000/img{i:08d}.png"]))
        assert decoded.mode == "L"
        np.testing.assert_array_equal(np.array(decoded), image)

    _assert_ok(_run("--source", str(src), "--dest", str(tmp_path / "one.zip"), "--max-images", "1"))
    files = _read_output(str(tmp_path / "one.zip"))
    assert sorted(files) == ["00000/img00000000.png", "dataset.json"]
    assert json.loads(files["dataset.json"]) == {"labels": [["00000/img00000000.png", [0.5, 1.5]]]}


def _cifar_tarball(path, protocol: int, images_per_batch: int = 3) -> tuple[np.ndarray, list[int]]:
    """A CIFAR-10 python tarball: batches are pickled dicts with 'data' uint8 [N, 3072] (CHW rows), 'labels'."""
    rng = np.random.RandomState(0)
    all_rows, all_labels = [], []
    with tarfile.open(path, "w:gz") as tar:
        for batch in range(1, 6):
            rows = rng.randint(0, 256, size=[images_per_batch, 3072], dtype=np.uint8)
            labels = [int(x) for x in rng.randint(0, 10, size=images_per_batch)]
            content = pickle.dumps(
                {
                    "batch_label": f"training batch {batch} of 5",
                    "labels": labels,
                    "data": rows,
                    "filenames": ["x.png"] * images_per_batch,
                },
                protocol=protocol,
            )
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{batch}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
            all_rows.append(rows)
            all_labels += labels
    return np.concatenate(all_rows), all_labels


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_source(tmp_path, protocol):
    rows, labels = _cifar_tarball(tmp_path / "cifar-10-python.tar.gz", protocol)
    dest = str(tmp_path / "cifar10.zip")
    _assert_ok(_run("--source", str(tmp_path / "cifar-10-python.tar.gz"), "--dest", dest))
    files = _read_output(dest)
    assert json.loads(files["dataset.json"])["labels"] == [[f"00000/img{i:08d}.png", c] for i, c in enumerate(labels)]
    for i, row in enumerate(rows):
        r, g, b = row[:1024].reshape(32, 32), row[1024:2048].reshape(32, 32), row[2048:].reshape(32, 32)
        np.testing.assert_array_equal(_decode(files[f"00000/img{i:08d}.png"]), np.dstack([r, g, b]))


def test_cifar10_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        content = pickle.dumps({"data": Evil()})
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    _assert_error(
        _run("--source", str(tmp_path / "cifar-10-python.tar.gz"), "--dest", str(tmp_path / "o.zip")),
        "is not allowed",
        "download cifar-10-python.tar.gz again",
    )


def _write_idx_gz(path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def test_mnist_source_pads_to_32(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, size=[3, 28, 28], dtype=np.uint8)
    _write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", 2051, images)
    _write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", 2049, np.array([7, 0, 9]))
    dest = str(tmp_path / "mnist")
    _assert_ok(_run("--source", str(tmp_path / "train-images-idx3-ubyte.gz"), "--dest", dest))
    files = _read_output(dest)
    assert json.loads(files["dataset.json"])["labels"] == [
        ["00000/img00000000.png", 7],
        ["00000/img00000001.png", 0],
        ["00000/img00000002.png", 9],
    ]
    for i in range(3):
        expected = np.zeros([32, 32], dtype=np.uint8)
        expected[2:30, 2:30] = images[i]
        np.testing.assert_array_equal(_decode(files[f"00000/img{i:08d}.png"]), expected)


def test_mnist_missing_labels_file(tmp_path):
    _write_idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, np.zeros([1, 28, 28]))
    _assert_error(
        _run("--source", str(tmp_path / "t10k-images-idx3-ubyte.gz"), "--dest", str(tmp_path / "o.zip")),
        "t10k-labels-idx1-ubyte.gz not found",
        "put it beside",
    )
    assert not (tmp_path / "o.zip").exists()


@pytest.mark.skipif(not os.path.isfile(FASHION_MNIST), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian_package(tmp_path):
    dest = str(tmp_path / "fashion.zip")
    _assert_ok(_run("--source", FASHION_MNIST, "--dest", dest, "--max-images", "5"))
    with gzip.open(FASHION_MNIST) as file:
        raw = np.frombuffer(file.read(16 + 5 * 784)[16:], dtype=np.uint8).reshape(5, 28, 28)
    with gzip.open(FASHION_MNIST.replace("images-idx3", "labels-idx1")) as file:
        labels = list(file.read(8 + 5)[8:])
    dataset = ImageFolderDataset(dest, use_labels=True)
    assert len(dataset) == 5 and dataset.resolution == 32 and dataset.num_channels == 1
    for i in range(5):
        image, _ = dataset[i]
        np.testing.assert_array_equal(image[0, 2:30, 2:30], raw[i])
        assert dataset.get_details(i).raw_label == labels[i]


def test_lmdb_source(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    images = [_random_image(8, 8, seed=i) for i in range(3)]
    env = lmdb.open(str(tmp_path / "bedroom_lmdb"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            PIL.Image.fromarray(image).save(buffer, format="png")
            txn.put(f"key{i}".encode(), buffer.getvalue())
        txn.put(b"key9", b"broken record")
    env.close()
    result = _run("--source", str(tmp_path / "bedroom_lmdb"), "--dest", str(tmp_path / "out.zip"))
    _assert_ok(result)
    assert "Skipping" in result.output and "key9" in result.output
    files = _read_output(str(tmp_path / "out.zip"))
    assert json.loads(files["dataset.json"]) == {"labels": None}
    for i, image in enumerate(images):
        np.testing.assert_array_equal(_decode(files[f"00000/img{i:08d}.png"]), image)


def test_lmdb_without_package_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)  # Makes `import lmdb` raise ImportError.
    (tmp_path / "church_lmdb").mkdir()
    _assert_error(
        _run("--source", str(tmp_path / "church_lmdb"), "--dest", str(tmp_path / "o.zip")), "pip install lmdb"
    )


# ---------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    "resize_filter, resample", [("box", PIL.Image.Resampling.BOX), ("lanczos", PIL.Image.Resampling.LANCZOS)]
)
def test_resize_matches_pillow(tmp_path, resize_filter, resample):
    image = _random_image(48, 48)
    _save(tmp_path / "src" / "a.png", image)
    dest = str(tmp_path / "out.zip")
    _assert_ok(
        _run(
            "--source",
            str(tmp_path / "src"),
            "--dest",
            dest,
            "--width",
            "32",
            "--height",
            "32",
            "--resize-filter",
            resize_filter,
        )
    )
    expected = np.array(PIL.Image.fromarray(image).resize((32, 32), resample))
    np.testing.assert_array_equal(_decode(_read_output(dest)["00000/img00000000.png"]), expected)


def test_center_crop_matches_pillow(tmp_path):
    image = _random_image(24, 40)  # H = 24, W = 40: the centred 24x24 square starts at column 8.
    _save(tmp_path / "src" / "a.png", image)
    dest = str(tmp_path / "out.zip")
    _assert_ok(
        _run(
            "--source",
            str(tmp_path / "src"),
            "--dest",
            dest,
            "--transform",
            "center-crop",
            "--width",
            "16",
            "--height",
            "16",
        )
    )
    expected = np.array(PIL.Image.fromarray(image).crop((8, 0, 32, 24)).resize((16, 16), PIL.Image.LANCZOS))
    np.testing.assert_array_equal(_decode(_read_output(dest)["00000/img00000000.png"]), expected)


def test_center_crop_wide_matches_pillow_and_drops_small_images(tmp_path):
    image = _random_image(48, 64)  # ch = round(32 * 48 / 64) = 24 rows from row 12; pasted at rows 8..24.
    _save(tmp_path / "src" / "a.png", image)
    _save(tmp_path / "src" / "b.png", _random_image(8, 16))  # Narrower than --width: dropped.
    _save(tmp_path / "src" / "c.png", image[::-1])
    dest = str(tmp_path / "out")
    _assert_ok(
        _run(
            "--source",
            str(tmp_path / "src"),
            "--dest",
            dest,
            "--transform",
            "center-crop-wide",
            "--width",
            "32",
            "--height",
            "16",
            "--resize-filter",
            "box",
        )
    )
    files = _read_output(dest)
    assert sorted(files) == ["00000/img00000000.png", "00000/img00000002.png", "dataset.json"]  # Gap at 1.
    for name, source in [("00000/img00000000.png", image), ("00000/img00000002.png", image[::-1])]:
        crop = PIL.Image.fromarray(source).crop((0, 12, 64, 36)).resize((32, 16), PIL.Image.BOX)
        canvas = PIL.Image.new("RGB", (32, 32))
        canvas.paste(crop, (0, 8))
        np.testing.assert_array_equal(_decode(files[name]), np.array(canvas))

    _assert_error(
        _run(
            "--source",
            str(tmp_path / "src"),
            "--dest",
            str(tmp_path / "none.zip"),
            "--transform",
            "center-crop-wide",
            "--width",
            "128",
            "--height",
            "64",
        ),
        "None of the 3 images",
        "lower them",
    )
    assert not (tmp_path / "none.zip").exists()


# ------------------------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_failure_midway_leaves_no_output(tmp_path, dest_name):
    for i in range(3):
        _save(tmp_path / "src" / f"{i}.png", _random_image(8, 8, seed=i))
    (tmp_path / "src" / "3.png").write_bytes(b"\x89PNG truncated")
    _assert_error(
        _run("--source", str(tmp_path / "src"), "--dest", str(tmp_path / dest_name)),
        "Cannot read image",
        "3.png",
        "replace or remove the file",
    )
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_interrupt_midway_leaves_no_output(tmp_path, monkeypatch):
    for i in range(3):
        _save(tmp_path / "src" / f"{i}.png", _random_image(8, 8, seed=i))
    calls = []

    def encode_then_interrupt(image, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original_encode(image, **kwargs)

    original_encode = dataset_tool.encode_png
    monkeypatch.setattr(dataset_tool, "encode_png", encode_then_interrupt)
    with pytest.raises(click.ClickException, match="interrupted .*nothing was written"):
        dataset_tool.convert_dataset(
            str(tmp_path / "src"),
            str(tmp_path / "out.zip"),
            None,
            dataset_tool.make_transform(None, None, None, "lanczos"),
        )
    assert sorted(os.listdir(tmp_path)) == ["src"]


SIGTERM_SCRIPT = """
import sys, time
import dataset_tool
from dnnlib import atomic
original = dataset_tool.encode_png
def slow_encode(image, **kwargs):
    print('encoding', flush=True)
    time.sleep(0.2)
    return original(image, **kwargs)
dataset_tool.encode_png = slow_encode
dataset_tool.main(sys.argv[1:])
"""


def test_sigterm_midway_removes_the_temp_file(tmp_path):
    for i in range(40):
        _save(tmp_path / "src" / f"{i}.png", _random_image(8, 8, seed=i))
    repo = str(REPO_ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT, "--source", str(tmp_path / "src"), "--dest", str(tmp_path / "out.zip")],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONPATH=repo),
    )
    assert proc.stdout.readline().startswith("encoding")  # Mid-conversion: the temp zip exists now.
    assert any(atomic.is_temp_name(name) for name in os.listdir(tmp_path))
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1 and "interrupted (terminated by SIGTERM); nothing was written" in output
    assert "Traceback" not in output
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    for i in range(3):
        _save(tmp_path / "src" / f"{i}.png", _random_image(8, 8, seed=i))
    original_writestr = zipfile.ZipFile.writestr

    def writestr_until_full(self, name, data, *args, **kwargs):
        if name.endswith("00000001.png"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr_until_full)
    result = _run("--source", str(tmp_path / "src"), "--dest", str(tmp_path / "out.zip"))
    _assert_error(result, "out.zip: no space left on device", "nothing was written")
    assert "Traceback" not in result.output and sorted(os.listdir(tmp_path)) == ["src"]


def test_unwritable_destination_and_destination_under_a_file(tmp_path, monkeypatch):
    _save(tmp_path / "src" / "0.png", _random_image(8, 8))
    (tmp_path / "afile").write_text("x")
    _assert_error(
        _run("--source", str(tmp_path / "src"), "--dest", str(tmp_path / "afile" / "sub" / "out.zip")),
        "lies under",
        "which is a file",
    )

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", refuse)  # Tests run as root: simulate a read-only folder.
    result = _run("--source", str(tmp_path / "src"), "--dest", str(tmp_path / "out.zip"))
    _assert_error(result, "out.zip: permission denied")
    assert sorted(os.listdir(tmp_path)) == ["afile", "src"]


def test_decompression_bomb_png_is_one_line(tmp_path, monkeypatch):
    _save(tmp_path / "src" / "0.png", _random_image(16, 16))
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 256 pixels > 2 * 100: Pillow's bomb error.
    result = _run("--source", str(tmp_path / "src"), "--dest", str(tmp_path / "out.zip"))
    _assert_error(result, "Cannot read image", "0.png", "decompression bomb")
    assert sorted(os.listdir(tmp_path)) == ["src"]


@pytest.mark.parametrize(
    "labels, message",
    [
        (["cat", "dog"], "must be an int class index or a list of numbers"),
        ([1.5, 0], "must be integers >= 0, got 1.5"),
        ([-1, 0], "must be integers >= 0, got -1"),
        ([10**9, 0], "too large: at most 100000 classes"),
        ([[0.5, 1.0], [0.5]], "vectors of one length"),
        ([1, [0.5]], "both kinds"),
        ([True, False], "must be an int class index"),
    ],
)
def test_bad_labels_are_refused_where_written(tmp_path, labels, message):
    names = []
    for i in range(len(labels)):
        _save(tmp_path / "src" / f"{i}.png", _random_image(8, 8, seed=i))
        names.append(f"{i}.png")
    (tmp_path / "src" / "dataset.json").write_text(json.dumps({"labels": [list(x) for x in zip(names, labels)]}))
    _assert_error(_run("--source", str(tmp_path / "src"), "--dest", str(tmp_path / "out.zip")), message)
    assert sorted(os.listdir(tmp_path)) == ["src"]


# ------------------------------------------------------------------------------------------- bad input


def _source_folder(tmp_path, *images: np.ndarray) -> str:
    for i, image in enumerate(images):
        _save(tmp_path / "src" / f"{i}.png", image)
    return str(tmp_path / "src")


def test_error_mixed_sizes_and_channels(tmp_path):
    src = _source_folder(tmp_path, _random_image(8, 8), _random_image(16, 16))
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip")),
        "1.png (output 00000/img00000001.png) attributes must be equal",
        "  dataset width/cur image width: 8/16",
        "  dataset height/cur image height: 8/16",
    )
    (tmp_path / "src" / "1.png").unlink()
    _save(tmp_path / "src" / "1.png", _random_image(8, 8, channels=1))
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip")), "  dataset channels/cur image channels: 3/1"
    )
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_error_non_power_of_two_suggests_resize(tmp_path):
    src = _source_folder(tmp_path, _random_image(28, 28, channels=1))
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip")),
        "required to be power-of-two",
        "28x28",
        "--width=32 --height=32",
    )
    _assert_ok(_run("--source", src, "--dest", str(tmp_path / "a.zip"), "--width=32", "--height=32"))


def test_error_non_square(tmp_path):
    src = _source_folder(tmp_path, _random_image(8, 16))
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip")),
        "required to be square.  Got 16x8",
        "--transform=center-crop",
    )
    # Only --width given: the height is kept, so the result is still not square.
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip"), "--width", "32"), "required to be square.  Got 32x8"
    )


def test_error_rgba_is_not_rgb_or_grayscale(tmp_path):
    src = _source_folder(tmp_path, _random_image(8, 8, channels=4))
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip")),
        "must be stored as RGB or grayscale",
        "0.png has Pillow mode RGBA",
        "convert",
    )


def test_error_unknown_or_missing_source(tmp_path):
    (tmp_path / "photos.tar").write_bytes(b"x")
    _assert_error(
        _run("--source", str(tmp_path / "photos.tar"), "--dest", str(tmp_path / "a.zip")),
        "Unknown input file type",
        "photos.tar",
        "cifar-10-python.tar.gz",
    )
    _assert_error(
        _run("--source", str(tmp_path / "nothing"), "--dest", str(tmp_path / "a.zip")),
        "Missing input file or directory",
    )
    (tmp_path / "empty").mkdir()
    _assert_error(_run("--source", str(tmp_path / "empty"), "--dest", str(tmp_path / "a.zip")), "No images found")


def test_error_destination_exists(tmp_path):
    src = _source_folder(tmp_path, _random_image(8, 8))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    _assert_error(_run("--source", src, "--dest", str(tmp_path / "full")), "--dest folder must be empty")
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "old.zip").write_bytes(b"mine")
    _assert_error(_run("--source", src, "--dest", str(tmp_path / "old.zip")), "already exists")
    assert (tmp_path / "old.zip").read_bytes() == b"mine"
    (tmp_path / "empty").mkdir()
    _assert_ok(_run("--source", src, "--dest", str(tmp_path / "empty")))  # An empty folder is fine.
    assert sorted(os.listdir(tmp_path / "empty")) == ["00000", "dataset.json"]


def test_usage_errors(tmp_path):
    src = _source_folder(tmp_path, _random_image(8, 8))
    result = _run("--source", src, "--dest", "")
    assert result.exit_code == 2 and "must not be an empty string" in result.output
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip"), "--transform", "center-crop"),
        "must specify --width and --height when using center-crop transform",
    )
    _assert_error(
        _run("--source", src, "--dest", str(tmp_path / "a.zip"), "--transform", "center-crop-wide", "--width", "8"),
        "must specify --width and --height when using center-crop-wide transform",
    )
    assert _run("--source", src, "--dest", str(tmp_path / "a.zip"), "--max-images", "0").exit_code == 2
