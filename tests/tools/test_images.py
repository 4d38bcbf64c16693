"""dnnlib.images: the PNG writer round-trips exactly and tiles grids row by row."""

import io

import numpy as np
import PIL.Image
import pytest

from dnnlib.images import encode_png, save_png, tile_images


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_save_png_round_trips_pixels(tmp_path, channels):
    pixels = np.random.default_rng(channels).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    path = tmp_path / "x.png"
    save_png(pixels, str(path))
    back = np.asarray(PIL.Image.open(path))
    assert np.array_equal(back.reshape(5, 7, channels), pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary file left behind


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((4,), np.uint8), np.zeros((4, 4, 3))])
def test_save_png_refuses_other_shapes_and_dtypes(tmp_path, bad):
    with pytest.raises(ValueError, match="expected \\[H, W, C\\] uint8"):
        save_png(bad, str(tmp_path / "x.png"))
    assert not list(tmp_path.iterdir())


def test_tile_images_places_image_k_at_row_k_div_gw_column_k_mod_gw():
    gw, gh, c, h, w = 3, 2, 2, 4, 5
    images = np.random.default_rng(0).integers(0, 256, (gw * gh, c, h, w), dtype=np.uint8)
    canvas = tile_images(images, (gw, gh))
    assert canvas.shape == (gh * h, gw * w, c)
    for k in range(gw * gh):
        row, col = divmod(k, gw)
        assert np.array_equal(canvas[row * h : (row + 1) * h, col * w : (col + 1) * w], images[k].transpose(1, 2, 0))
    with pytest.raises(ValueError, match="needs 6 images"):
        tile_images(images[:5], (gw, gh))


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 1), (6, 5, 3)])
@pytest.mark.parametrize("level", [0, 9])
def test_encode_png_decodes_to_the_same_pixels_at_every_compression_level(shape, level):
    pixels = np.random.default_rng(level).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(pixels, compress_level=level)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = np.asarray(PIL.Image.open(io.BytesIO(data)))
    assert np.array_equal(back, pixels.reshape(back.shape))
    assert back.ndim == (3 if len(shape) == 3 and shape[2] == 3 else 2)
