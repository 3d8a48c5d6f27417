"""PNG encoders (litedepth_tf.common.images): the fast one gives exactly the pixels of the PIL one."""

import io
import struct

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


# ------------------------------------------------------------------------------------------------ decode_png


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _scanlines(pixels, bpp, kinds):
    """The PNG spec's filters, row by row: (h, w, bpp) bytes -> the filtered scanlines with their type bytes."""
    h = pixels.shape[0]
    rows = pixels.reshape(h, -1).astype(np.int32)
    out, prev = [], np.zeros_like(rows[0])
    for y in range(h):
        row, k = rows[y], int(kinds[y])
        a = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        pred = [0, a, prev, (a + prev) // 2, _paeth(a, prev, c)][k]
        out.append(np.concatenate([[k], (row - pred) % 256]).astype(np.uint8))
        prev = row
    return np.concatenate(out) if out else np.zeros(0, np.uint8)


def _encode(image, interlace=False, seed=0):
    """A PNG of `image` (HxW or HxWxC, uint8 / uint16) with a random filter per row, Adam7-interlaced or not."""
    import zlib

    from litedepth_tf.common.images import ADAM7

    a = image[..., None] if image.ndim == 2 else image
    h, w, ch = a.shape
    bits = 16 if a.dtype == np.uint16 else 8
    pixels = a.astype(">u2").view(np.uint8).reshape(h, w, -1) if bits == 16 else a
    bpp = pixels.shape[-1]
    rng = np.random.default_rng(seed)
    data = []
    for x0, y0, dx, dy in (ADAM7 if interlace else ((0, 0, 1, 1),)):
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            data.append(_scanlines(sub, bpp, rng.integers(0, 5, sub.shape[0])))
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[ch]

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, bits, color_type, 0, 0, int(interlace))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(np.concatenate(data)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("shape,dtype", [((13, 17, 3), np.uint16), ((9, 11, 4), np.uint16), ((10, 7), np.uint16),
                                         ((6, 5, 2), np.uint16), ((12, 15, 3), np.uint8), ((1, 1, 3), np.uint16),
                                         ((3, 2), np.uint8)])
def test_decode_png_gives_every_stored_sample_for_every_filter(shape, dtype, interlace):
    from litedepth_tf.common.images import decode_png

    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    got = decode_png(_encode(image, interlace, seed=len(shape)))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, image)


def test_decode_png_reads_libpng_and_pil_files():
    import tensorflow as tf

    from litedepth_tf.common.images import decode_png

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:48, 0:64]
    photo16 = (np.stack([yy * 900, xx * 700, (xx + yy) * 500], -1) + rng.normal(0, 200, (48, 64, 3))).clip(0, 65535)
    photo16 = photo16.astype(np.uint16)  # libpng's adaptive filters on a photo: Sub, Up, Average and Paeth rows
    np.testing.assert_array_equal(decode_png(tf.io.encode_png(photo16).numpy()), photo16)
    photo8 = (photo16 // 257).astype(np.uint8)
    np.testing.assert_array_equal(decode_png(png_bytes(photo8)), photo8)


def test_decode_png_names_what_it_cannot_read():
    from litedepth_tf.common.images import decode_png

    good = _encode(np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(ValueError, match="signature"):
        decode_png(b"GIF89a" + good[6:])
    with pytest.raises(ValueError, match="truncated"):
        decode_png(good[:40])
    with pytest.raises(ValueError, match="shorter than the image"):  # a header larger than its data
        decode_png(good[:16] + struct.pack(">II", 9, 8) + good[24:])
    with pytest.raises(ValueError, match=r"100000x100000 pixels\) exceeds the limit"):  # never allocated
        decode_png(good[:16] + struct.pack(">II", 100000, 100000) + good[24:])
    palette = io.BytesIO()
    Image.new("P", (4, 4)).save(palette, format="PNG")
    with pytest.raises(ValueError, match="colour type 3"):
        decode_png(palette.getvalue())
