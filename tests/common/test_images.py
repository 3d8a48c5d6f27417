"""PNG encoders (litedepth_tf.common.images): the fast one gives exactly the pixels of the PIL one."""

import io

import numpy as np
import pytest
from PIL import Image

from litedepth_tf.common.images import fast_png_bytes, png_bytes


def _decode(data):
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.mode, np.asarray(im)


@pytest.mark.parametrize("shape,dtype", [((480, 640), np.uint16), ((7, 5), np.uint16), ((1, 1), np.uint16),
                                         ((33, 17, 3), np.uint8), ((9, 4), np.uint8), ((6, 11, 4), np.uint8),
                                         ((5, 6, 2), np.uint8), ((8, 9, 1), np.uint16)])
def test_fast_png_decodes_to_the_same_pixels_as_pil(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    if dtype == np.uint16 and a.size > 1000:  # a smooth depth map with noise and the extremes, like predict's
        a = (np.linspace(0, 40000, a.size).reshape(shape) + rng.normal(0, 300, shape)).clip(0, 65535).astype(dtype)
        a[0, 0], a[-1, -1] = 0, 65535
    mode, got = _decode(fast_png_bytes(a))
    squeezed = a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a
    np.testing.assert_array_equal(got, squeezed)
    if squeezed.ndim == 2 or squeezed.shape[-1] in (3, 4):  # PIL cannot write 2-channel images
        pil_mode, pil = _decode(png_bytes(squeezed))
        assert mode == pil_mode
        np.testing.assert_array_equal(got, pil)


def test_fast_png_is_compressed_and_refuses_what_png_cannot_hold():
    depth = np.tile(np.arange(640, dtype=np.uint16) * 50, (480, 1))
    assert len(fast_png_bytes(depth)) < depth.nbytes / 20
    with pytest.raises(ValueError, match="uint8 or uint16"):
        fast_png_bytes(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="5-channel"):
        fast_png_bytes(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="HxW"):
        fast_png_bytes(np.zeros((0, 4), np.uint8))


def test_unfiltered_rows_give_the_same_pixels():
    rng = np.random.default_rng(3)
    lut = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    color = lut[np.clip(np.linspace(0, 255, 64 * 80).reshape(64, 80) + rng.normal(0, 4, (64, 80)), 0, 255).astype(int)]
    np.testing.assert_array_equal(_decode(fast_png_bytes(color, row_filter="none"))[1], color)
    np.testing.assert_array_equal(_decode(fast_png_bytes(color[..., 0], row_filter="none"))[1], color[..., 0])
    with pytest.raises(ValueError, match="row_filter"):
        fast_png_bytes(color, row_filter="paeth")
