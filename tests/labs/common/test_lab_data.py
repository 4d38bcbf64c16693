"""The labs' one image loader (`labs.common.data.load_images`): which images, in what order, with which labels,
checked against a brute-force read of the zip (PIL on each member, dataset.json by hand)."""

import io
import json
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import make_image_zip

from labs.common.data import load_images


def reversed_zip(source, dest):
    """The same dataset with its members stored in reverse order (the loader must sort them by name)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for name in reversed(src.namelist()):
            out.writestr(name, src.read(name))
    return dest


def brute_force(path):
    """(images uint8 [N, C, H, W] in file-name order, labels [N]) read member by member."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        images = [np.asarray(PIL.Image.open(io.BytesIO(archive.read(n)))) for n in names]
        labels = dict(json.loads(archive.read("dataset.json"))["labels"])
    images = np.stack([im[:, :, None] if im.ndim == 2 else im for im in images]).transpose(0, 3, 1, 2)
    return images, np.array([labels[n] for n in names])


@pytest.mark.parametrize("channels", [1, 3])
def test_all_images_in_file_name_order_with_their_labels(tmp_path, channels):
    path = reversed_zip(make_image_zip(tmp_path / "a.zip", 12, channels=channels, num_classes=3), tmp_path / "r.zip")
    expected, expected_labels = brute_force(path)
    images, labels = load_images(str(path), use_labels=True)
    assert images.dtype == torch.uint8 and images.shape == (12, channels, 16, 16)
    np.testing.assert_array_equal(images.numpy(), expected)
    np.testing.assert_array_equal(labels.numpy(), expected_labels)
    for cap in (12, 99):  # A cap of N or more keeps every image, in order, whatever the seed; no labels asked, none.
        capped, no_labels = load_images(str(path), max_images=cap, subset_seed=5)
        np.testing.assert_array_equal(capped.numpy(), expected)
        assert no_labels is None


@pytest.mark.parametrize("subset_seed", [0, 1, 7])
def test_subset_is_the_seeded_permutations_first_k_in_ascending_order(tmp_path, subset_seed):
    path = make_image_zip(tmp_path / "a.zip", 20, num_classes=4, seed=3)
    expected, expected_labels = brute_force(path)
    keep = np.sort(np.random.RandomState(subset_seed).permutation(20)[:6])
    images, labels = load_images(str(path), use_labels=True, max_images=6, subset_seed=subset_seed)
    np.testing.assert_array_equal(images.numpy(), expected[keep])
    np.testing.assert_array_equal(labels.numpy(), expected_labels[keep])


def test_other_seeds_draw_other_subsets_and_a_seed_draws_the_same_one_again(tmp_path):
    path = str(make_image_zip(tmp_path / "a.zip", 20))
    subsets = [load_images(path, max_images=6, subset_seed=s)[0] for s in (0, 1, 0)]
    assert not np.array_equal(subsets[0].numpy(), subsets[1].numpy())
    np.testing.assert_array_equal(subsets[0].numpy(), subsets[2].numpy())


def test_labels_asked_of_an_unlabelled_zip_is_one_line(tmp_path):
    path = str(make_image_zip(tmp_path / "a.zip", 4, num_classes=0))
    with pytest.raises(ValueError, match="no integer class labels") as error:
        load_images(path, use_labels=True)
    assert "\n" not in str(error.value)
    assert load_images(path)[0].shape == (4, 3, 16, 16)
