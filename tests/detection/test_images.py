from __future__ import annotations

import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detection.images import DEFAULT_MAX_PIXELS, ImageError, image_size, load_image


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds almost no data: what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _check_rgb(arr: np.ndarray, height: int, width: int) -> None:
    assert arr.dtype == np.uint8 and arr.shape == (height, width, 3)


def test_rgb_jpeg(tmp_path: Path):
    path = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path, quality=95)
    arr = load_image(path)
    _check_rgb(arr, 30, 40)
    assert np.abs(arr[15, 20].astype(int) - [200, 100, 50]).max() <= 3
    assert image_size(path) == (40, 30)
    assert image_size(str(path)) == (40, 30)
    np.testing.assert_array_equal(load_image(path.read_bytes()), arr)


def test_grayscale_png(tmp_path: Path):
    path = tmp_path / "g.png"
    Image.new("L", (10, 8), 77).save(path)
    arr = load_image(path)
    _check_rgb(arr, 8, 10)
    assert (arr == 77).all()


def test_rgba_png_drops_alpha(tmp_path: Path):
    path = tmp_path / "rgba.png"
    Image.new("RGBA", (6, 4), (10, 20, 30, 0)).save(path)
    arr = load_image(path)
    _check_rgb(arr, 4, 6)
    assert (arr == [10, 20, 30]).all()


@pytest.mark.parametrize("transparency", [0, b"\x00\x80"])
def test_palette_png_with_transparency(tmp_path: Path, transparency):
    path = tmp_path / "p.png"
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.putpixel((3, 1), 1)
    img.save(path, transparency=transparency)
    assert Image.open(path).info.get("transparency") == transparency
    with warnings.catch_warnings():
        # converting straight to RGB makes Pillow warn about per-entry transparency
        warnings.simplefilter("error")
        arr = load_image(path)
    _check_rgb(arr, 2, 4)
    assert (arr[0, 0] == [255, 0, 0]).all() and (arr[1, 3] == [0, 255, 0]).all()


def test_sixteen_bit_png_keeps_its_range(tmp_path: Path):
    path = tmp_path / "deep.png"
    gradient = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    arr = load_image(path)
    _check_rgb(arr, 8, 256)
    row = arr[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert 120 <= row.mean() <= 135  # a cast would have saturated to white
    assert (np.diff(row) >= 0).all()


def test_int32_and_float_grayscale():
    assert load_image(_to_bytes(Image.fromarray(np.full((3, 3), 1000, np.int32), "I"), "TIFF"))[0, 0, 0] == 4
    small = load_image(_to_bytes(Image.fromarray(np.full((3, 3), 100, np.int32), "I"), "TIFF"))
    assert (small == 100).all()
    floats = np.array([[-5.0, 12.4, 300.0]], np.float32)
    arr = load_image(_to_bytes(Image.fromarray(floats, "F"), "TIFF"))
    assert arr[0, :, 0].tolist() == [0, 12, 255]


def _to_bytes(img: Image.Image, fmt: str, **kwargs) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_cmyk_jpeg(tmp_path: Path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    arr = load_image(path)
    _check_rgb(arr, 16, 16)
    assert np.abs(arr[8, 8].astype(int) - [255, 0, 0]).max() <= 5


def test_exif_rotated_jpeg(tmp_path: Path):
    path = tmp_path / "rot.jpg"
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise
    img.save(path, quality=95, exif=exif.tobytes())
    assert image_size(path) == (20, 40)
    arr = load_image(path)
    _check_rgb(arr, 40, 20)
    # turning clockwise brings the stored left side to the top
    assert arr[10, 10, 0] > 200 and arr[10, 10, 2] < 50
    assert arr[30, 10, 2] > 200 and arr[30, 10, 0] < 50


def test_truncated_jpeg(tmp_path: Path):
    data = _to_bytes(_noise(256, 256), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)
    with pytest.raises(ImageError):
        load_image(data[: len(data) // 2])


def test_corrupt_png_data(tmp_path: Path):
    data = bytearray(_to_bytes(_noise(64, 64), "PNG"))
    data[100:200] = bytes(100)  # inside IDAT: the deflate stream and the CRC no longer hold
    with pytest.raises(ImageError) as info:
        load_image(bytes(data))
    assert not isinstance(info.value, OSError)


def test_not_an_image(tmp_path: Path):
    junk = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ImageError, match="not an image"):
        load_image(junk)
    with pytest.raises(ImageError, match="not an image"):
        image_size(junk)
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


def test_missing_file_is_not_an_image_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nothing.png")


def test_decompression_bomb_is_refused_from_the_header():
    bomb = _png_header(30000, 30000)
    assert len(bomb) < 100
    limit_before = Image.MAX_IMAGE_PIXELS
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"900000000 pixels \(900\.0 MP\), over the limit of 100\.0 MP"):
        load_image(bomb)
    # decoding 900 MP, even to 1 byte a pixel, would take far longer and hundreds of MB
    assert time.perf_counter() - start < 1.0
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_large_image_under_pillows_limit_is_refused_by_ours():
    header = _png_header(12000, 10000)  # 120 MP: over ours, under twice Pillow's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert image_size(header) == (12000, 10000)
        with pytest.raises(ImageError, match=r"12000x10000 \(120\.0 MP\), over the limit of 100\.0 MP"):
            load_image(header)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError, match="120000000 pixels"):
            load_image(header)


def test_max_pixels_is_honoured(tmp_path: Path):
    assert DEFAULT_MAX_PIXELS == 100_000_000
    path = tmp_path / "small.png"
    Image.new("RGB", (100, 80)).save(path)
    assert load_image(path, max_pixels=8000).shape == (80, 100, 3)
    with pytest.raises(ImageError, match="100x80"):
        load_image(path, max_pixels=7999)
