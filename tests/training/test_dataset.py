"""ImageFolderDataset: formats, labels, subsets, x-flips, DataLoader workers and bad input."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from training import dataset as dataset_module
from training.dataset import ImageFolderDataset


def _random_images(num: int, size: int = 8, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    """uint8 [H, W, C] images (C = 1 is stored as [H, W])."""
    rng = np.random.RandomState(seed)
    shape = [size, size] if channels == 1 else [size, size, channels]
    return [rng.randint(0, 256, size=shape, dtype=np.uint8) for _ in range(num)]


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="png")
    return buffer.getvalue()


def _write_dataset(root, kind: str, files: dict[str, bytes], name: str = "data") -> str:
    """Writes {relative path: bytes} as a folder or a zip under root; returns the dataset path."""
    if kind == "zip":
        path = os.path.join(root, f"{name}.zip")
        with zipfile.ZipFile(path, "w") as archive:
            for fname, data in files.items():
                archive.writestr(fname, data)
    else:
        path = os.path.join(root, name)
        for fname, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(path, fname)), exist_ok=True)
            with open(os.path.join(path, fname), "wb") as file:
                file.write(data)
    return path


def _chw(image: np.ndarray) -> np.ndarray:
    return (image[:, :, None] if image.ndim == 2 else image).transpose(2, 0, 1)


@pytest.mark.parametrize("kind", ["dir", "zip"])
@pytest.mark.parametrize("channels", [1, 3])
def test_images_and_properties(tmp_path, kind, channels):
    images = _random_images(5, size=8, channels=channels)
    files = {f"00000/img{i:08d}.png": _png_bytes(img) for i, img in enumerate(images)}
    files["readme.txt"] = b"not an image"
    dataset = ImageFolderDataset(_write_dataset(tmp_path, kind, files, name="my.set"), resolution=8)
    assert dataset.name == ("my.set" if kind == "zip" else "my")  # Basename without (last) extension.
    assert len(dataset) == 5
    assert dataset.image_shape == [channels, 8, 8]
    assert dataset.num_channels == channels and dataset.resolution == 8
    assert not dataset.has_labels and dataset.label_shape == [0] and dataset.label_dim == 0
    for idx, expected in enumerate(images):
        image, label = dataset[idx]
        assert image.dtype == np.uint8 and image.shape == (channels, 8, 8)
        np.testing.assert_array_equal(image, _chw(expected))
        assert label.dtype == np.float32 and label.shape == (0,)


def test_name_of_zip_and_trailing_slash(tmp_path):
    files = {"a.png": _png_bytes(_random_images(1)[0])}
    assert ImageFolderDataset(_write_dataset(tmp_path, "zip", files, name="ffhq256")).name == "ffhq256"
    assert ImageFolderDataset(_write_dataset(tmp_path, "dir", files, name="cats") + "/").name == "cats"


def test_jpeg_and_plain_string_order(tmp_path):
    images = _random_images(4, size=16)
    jpeg = io.BytesIO()
    PIL.Image.fromarray(images[3]).save(jpeg, format="jpeg", quality=90)
    # Plain string order of relative paths: 'B.png' < 'a.png' < 'a/x.png' < 'b.JPG'.
    files = {
        "a/x.png": _png_bytes(images[2]),
        "b.JPG": jpeg.getvalue(),
        "a.png": _png_bytes(images[1]),
        "B.png": _png_bytes(images[0]),
    }
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "zip", files))
    for idx in range(3):
        np.testing.assert_array_equal(dataset[idx][0], _chw(images[idx]))
    decoded_jpeg = np.array(PIL.Image.open(io.BytesIO(jpeg.getvalue())))
    np.testing.assert_array_equal(dataset[3][0], _chw(decoded_jpeg))


@pytest.mark.parametrize("kind", ["dir", "zip"])
def test_class_labels_become_onehot(tmp_path, kind):
    classes = [2, 0, 4, 2]
    files = {f"00000/img{i:08d}.png": _png_bytes(img) for i, img in enumerate(_random_images(4))}
    labels = [[f"00000/img{i:08d}.png", c] for i, c in enumerate(classes)]
    files["dataset.json"] = json.dumps({"labels": labels[::-1]}).encode()  # Order in the file does not matter.
    dataset = ImageFolderDataset(_write_dataset(tmp_path, kind, files), use_labels=True)
    assert dataset.has_labels and dataset.has_onehot_labels
    assert dataset.label_shape == [5] and dataset.label_dim == 5
    for idx, cls in enumerate(classes):
        expected = np.zeros(5, dtype=np.float32)
        expected[cls] = 1
        label = dataset.get_label(idx)
        assert label.dtype == np.float32
        np.testing.assert_array_equal(label, expected)
        np.testing.assert_array_equal(dataset[idx][1], expected)
        assert dataset.get_details(idx).raw_label == cls

    no_labels = ImageFolderDataset(dataset._path, use_labels=False)
    assert not no_labels.has_labels and no_labels[0][1].shape == (0,)


def test_vector_labels_and_integral_floats(tmp_path):
    files = {f"{i}.png": _png_bytes(img) for i, img in enumerate(_random_images(3))}
    vectors = [[0.5, -1.0], [2.0, 0.25], [0.0, 3.5]]
    files["dataset.json"] = json.dumps({"labels": [[f"{i}.png", v] for i, v in enumerate(vectors)]}).encode()
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "zip", files), use_labels=True)
    assert dataset.has_labels and not dataset.has_onehot_labels and dataset.label_shape == [2]
    for idx, vector in enumerate(vectors):
        label = dataset.get_label(idx)
        assert label.dtype == np.float32
        np.testing.assert_array_equal(label, np.float32(vector))

    files["dataset.json"] = json.dumps({"labels": [[f"{i}.png", float(i)] for i in range(3)]}).encode()
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "dir", files), use_labels=True)
    assert dataset.has_onehot_labels and dataset.label_dim == 3
    np.testing.assert_array_equal(dataset.get_label(1), [0, 1, 0])


@pytest.mark.parametrize("content", [None, {"labels": None}])
def test_missing_or_null_labels_mean_unlabeled(tmp_path, content):
    files = {"a.png": _png_bytes(_random_images(1)[0])}
    if content is not None:
        files["dataset.json"] = json.dumps(content).encode()
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "zip", files), use_labels=True)
    assert not dataset.has_labels and dataset.label_shape == [0]
    assert dataset.get_label(0).shape == (0,) and dataset.get_label(0).dtype == np.float32


def test_xflip_doubles_and_flips(tmp_path):
    images = _random_images(3, size=4)
    files = {f"{i}.png": _png_bytes(img) for i, img in enumerate(images)}
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "dir", files), xflip=True)
    assert len(dataset) == 6
    for idx in range(6):
        raw = images[idx % 3]
        flipped = idx >= 3
        expected = raw[:, ::-1] if flipped else raw  # Reverse along W.
        np.testing.assert_array_equal(dataset[idx][0], _chw(expected))
        details = dataset.get_details(idx)
        assert details.raw_idx == idx % 3 and details.xflip == flipped


def test_max_size_subset_test_vectors_and_determinism(tmp_path):
    images = _random_images(10, size=4)
    files = {f"{i:02d}.png": _png_bytes(img) for i, img in enumerate(images)}
    path = _write_dataset(tmp_path, "zip", files)
    for seed, expected_raw in [(0, [1, 2, 4, 8, 9]), (3, [1, 2, 4, 5, 9])]:  # Spec test vectors.
        dataset = ImageFolderDataset(path, max_size=5, random_seed=seed)
        assert [dataset.get_details(i).raw_idx for i in range(len(dataset))] == expected_raw
        for idx, raw_idx in enumerate(expected_raw):
            np.testing.assert_array_equal(dataset[idx][0], _chw(images[raw_idx]))
    flipped = ImageFolderDataset(path, max_size=5, random_seed=0, xflip=True)
    assert [flipped.get_details(i).raw_idx for i in range(10)] == [1, 2, 4, 8, 9] * 2
    assert len(ImageFolderDataset(path, max_size=20)) == 10
    with pytest.raises(ValueError, match="max_size"):
        ImageFolderDataset(path, max_size=0)


class _ZipHandleOwner(torch.utils.data.Dataset):
    """Loads an item, then reports (this process id, id of the process that opened the zip handle)."""

    def __init__(self, dataset: ImageFolderDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return 4

    def __getitem__(self, idx: int) -> tuple[int, int]:
        self.dataset[idx]
        return os.getpid(), self.dataset._zipfile_pid


def test_dataloader_workers_and_pickling(tmp_path):
    images = _random_images(12, size=8)
    files = {f"{i:02d}.png": _png_bytes(img) for i, img in enumerate(images)}
    files["dataset.json"] = json.dumps({"labels": [[f"{i:02d}.png", i % 3] for i in range(12)]}).encode()
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "zip", files), use_labels=True, xflip=True)
    dataset[0]  # The parent holds an open zip handle; forked workers must not share it.

    clone = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(clone[5][0], _chw(images[5]))
    np.testing.assert_array_equal(clone.get_label(5), np.eye(3, dtype=np.float32)[2])

    loader = torch.utils.data.DataLoader(dataset, batch_size=5, num_workers=2, shuffle=False)
    batches = list(loader)
    got_images = torch.cat([b[0] for b in batches]).numpy()
    got_labels = torch.cat([b[1] for b in batches]).numpy()
    expected = np.stack([_chw(img) for img in images] + [_chw(img[:, ::-1]) for img in images])
    np.testing.assert_array_equal(got_images, expected)
    np.testing.assert_array_equal(got_labels, np.eye(3, dtype=np.float32)[np.arange(24) % 12 % 3])
    np.testing.assert_array_equal(dataset[13][0], expected[13])  # Parent handle still usable.

    # Each forked worker reads through a zip handle it opened itself (a shared file offset would race).
    handle_owners = torch.utils.data.DataLoader(_ZipHandleOwner(dataset), batch_size=None, num_workers=2)
    for worker_pid, handle_pid in handle_owners:
        assert worker_pid != os.getpid() and handle_pid == worker_pid


# ---------------------------------------------------------------------------------------------- bad input


def test_error_path_missing_or_not_a_dataset(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        ImageFolderDataset(str(tmp_path / "nope.zip"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(OSError, match="directory or zip"):
        ImageFolderDataset(str(tmp_path / "notes.txt"))
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(OSError, match="not a valid zip"):
        ImageFolderDataset(str(tmp_path / "broken.zip"))


def test_error_no_images(tmp_path):
    path = _write_dataset(tmp_path, "dir", {"notes.txt": b"x", "dataset.json": b'{"labels": null}'})
    with pytest.raises(OSError, match="No image files found"):
        ImageFolderDataset(path)


def test_error_resolution_mismatch_and_non_square(tmp_path):
    path = _write_dataset(tmp_path, "zip", {"a.png": _png_bytes(_random_images(1, size=8)[0])})
    with pytest.raises(OSError, match="do not match the specified resolution.*8x8.*resolution=16"):
        ImageFolderDataset(path, resolution=16)
    wide = np.zeros([4, 8, 3], dtype=np.uint8)
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "dir", {"a.png": _png_bytes(wide)}))
    with pytest.raises(OSError, match="non-square 8x4"):
        dataset.resolution
    with pytest.raises(OSError, match="do not match the specified resolution"):
        ImageFolderDataset(dataset._path, resolution=8)


@pytest.mark.parametrize(
    "odd_image", [np.zeros([16, 16, 3], np.uint8), np.zeros([8, 8], np.uint8)], ids=["size", "channels"]
)
def test_error_mixed_sizes_or_channels_name_the_file(tmp_path, odd_image):
    files = {"a.png": _png_bytes(_random_images(1, size=8)[0]), "b.png": _png_bytes(odd_image)}
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "zip", files))
    dataset[0]
    with pytest.raises(OSError, match='"b.png".*first image is uint8 \\[3, 8, 8\\]'):
        dataset[1]


def test_error_16_bit_images(tmp_path):
    deep = PIL.Image.fromarray(np.full([8, 8], 40000, dtype=np.uint16))
    buffer = io.BytesIO()
    deep.save(buffer, format="png")
    with pytest.raises(OSError, match="not 8 bits per channel"):
        ImageFolderDataset(_write_dataset(tmp_path, "zip", {"a.png": buffer.getvalue()}))


def test_error_corrupt_image_names_the_file(tmp_path):
    good = _png_bytes(_random_images(1)[0])
    with pytest.raises(OSError, match='Cannot decode image "a.png"'):
        ImageFolderDataset(_write_dataset(tmp_path, "dir", {"a.png": b"garbage", "b.png": good}, name="d1"))
    dataset = ImageFolderDataset(_write_dataset(tmp_path, "zip", {"a.png": good, "b.png": good[:60]}))
    with pytest.raises(OSError, match='Cannot decode image "b.png"'):
        dataset[1]


@pytest.mark.parametrize(
    "labels, message",
    [
        ([["a.png", 1]], "no label for image 'b.png'"),
        ([["a.png", 1], ["b.png", -1]], "integers >= 0"),
        ([["a.png", 1], ["b.png", 1.5]], "integers >= 0"),
        ([["a.png", [1.0, 2.0]], ["b.png", [1.0]]], "all class indices or all vectors"),
        ([["a.png", "cat"], ["b.png", "dog"]], "int class index or a list of numbers"),
        ("oops", "list of \\[path, label\\] pairs"),
    ],
)
def test_error_bad_or_missing_labels(tmp_path, labels, message):
    files = {name: _png_bytes(img) for name, img in zip(["a.png", "b.png"], _random_images(2))}
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    path = _write_dataset(tmp_path, "zip", files)
    with pytest.raises(OSError, match=message):
        ImageFolderDataset(path, use_labels=True)
    assert len(ImageFolderDataset(path, use_labels=False)) == 2  # Labels are not read without use_labels.


def test_error_unreadable_labels_file(tmp_path):
    files = {"a.png": _png_bytes(_random_images(1)[0]), "dataset.json": b'{"labels": [[}'}
    with pytest.raises(OSError, match='Cannot read "dataset.json"'):
        ImageFolderDataset(_write_dataset(tmp_path, "dir", files), use_labels=True)


def test_error_class_index_beyond_the_class_cap(tmp_path):
    files = {name: _png_bytes(img) for name, img in zip(["a.png", "b.png"], _random_images(2))}
    files["dataset.json"] = json.dumps({"labels": [["a.png", 10**9], ["b.png", 0]]}).encode()
    path = _write_dataset(tmp_path, "zip", files)
    with pytest.raises(OSError, match="too large: at most 100000 classes"):
        ImageFolderDataset(path, use_labels=True)  # Would otherwise be a one-hot vector of 10^9 floats per image.


def test_dataset_json_size_is_capped_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "MAX_LABELS_JSON_BYTES", 10_000)
    padding = " " * 50_000  # Compresses to a few hundred bytes, inflates beyond the cap.
    files = {name: _png_bytes(img) for name, img in zip(["a.png", "b.png"], _random_images(2))}
    path = str(tmp_path / "bomb.zip")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("dataset.json", '{"labels": null}' + padding)
    assert os.path.getsize(path) < 10_000
    reads = []
    original_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(
        zipfile.ZipExtFile,
        "read",
        lambda self, n=-1: (self.name == "dataset.json" and reads.append(n)) or original_read(self, n),
    )
    with pytest.raises(OSError, match='dataset.json" in .* is 50,016 bytes; dataset.json may hold at most 10,000'):
        ImageFolderDataset(path, use_labels=True)
    assert reads == []  # Refused from the recorded size, before inflating anything.
    assert ImageFolderDataset(path, use_labels=False).label_dim == 0  # Unused labels are never read.


def test_oversized_file_that_lies_about_its_size_is_cut_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "MAX_LABELS_JSON_BYTES", 100)
    with pytest.raises(OSError, match="inflates to more than"):
        dataset_module.read_labels_json(io.BytesIO(b" " * 1000 + b'{"labels": null}'), 10, "dataset.json")
