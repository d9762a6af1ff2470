"""Safe image decoding for models: size limits before decoding, every mode to 8-bit RGB, clear errors.

Pillow's own decompression-bomb guard reads the global `Image.MAX_IMAGE_PIXELS`, which other code may change;
the limit here is checked from the header before any pixel is decoded and leaves that global alone. Pillow still
refuses, already when opening, anything over twice that global (about 179 MP by default) and warns above it;
the refusal (or the warning, where warnings are errors) is reported as an ImageError too, with the pixel
count only, since Pillow does not hand over the image's width and height.
"""
from __future__ import annotations

import functools
import io
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000

# formats people label (JPEG covers MPO); others such as EPS would run Ghostscript on untrusted files
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "PPM")

# EXIF orientations that turn the image a quarter, so width and height change places
_SWAPS_AXES = (5, 6, 7, 8)

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageError(ValueError):
    """The data is not an image that can be decoded safely: not an image, truncated, corrupt or too large."""


def _megapixels(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:.1f} MP" if mp >= 1 else f"{mp:.3g} MP"


def _bomb_error(exc: Exception, max_pixels: int) -> ImageError:
    # Pillow refuses before it gives the size; its message has the pixel count
    match = re.search(r"\((\d+) pixels\)", str(exc))
    if match is None:
        return ImageError(f"image is too large to decode safely: {exc}")
    pixels = int(match.group(1))
    if pixels > max_pixels:
        return ImageError(
            f"image has {pixels} pixels ({_megapixels(pixels)}), over the limit of {_megapixels(max_pixels)}"
        )
    return ImageError(f"image has {pixels} pixels ({_megapixels(pixels)}), over Pillow's limit: {exc}")


@functools.cache
def _available_formats() -> tuple[str, ...]:
    # Image.open fails with KeyError on a format this Pillow build lacks (AVIF needs libavif)
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _open(source: str | Path | bytes) -> Image.Image:
    """Open lazily (header only); the caller closes it. A missing file raises FileNotFoundError."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    formats = _available_formats()
    try:
        return Image.open(fp, formats=formats)
    except UnidentifiedImageError as exc:
        raise ImageError(f"not an image (cannot identify image file; supported: {', '.join(formats)})") from exc


def _orientation(img: Image.Image) -> int:
    if img.format == "PNG" and "exif" not in img.info:
        # PNG's getexif() decodes the whole image to look for an eXIf chunk after the pixels; the base method
        # reads only what the header gave (text chunks, XMP)
        exif = Image.Image.getexif(img)
    else:
        exif = img.getexif()
    try:
        return int(exif.get(0x0112, 1))  # 0x0112: Orientation
    except (TypeError, ValueError):
        return 1


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    pixels = width * height
    if pixels > max_pixels:
        raise ImageError(
            f"image is {width}x{height} ({_megapixels(pixels)}), over the limit of {_megapixels(max_pixels)}"
        )


@contextmanager
def _image_errors(max_pixels: int) -> Iterator[None]:
    """Turn Pillow's many ways of failing on bad data into ImageError; file-system errors pass through."""
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc, max_pixels) from exc
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageError(f"truncated image: {exc}") from exc
        raise ImageError(f"corrupt image: {exc}") from exc
    except (SyntaxError, EOFError, ValueError, IndexError, struct.error) as exc:
        raise ImageError(f"corrupt image: {exc!r}") from exc


def image_size(source: str | Path | bytes, max_pixels: int | None = None) -> tuple[int, int]:
    """Size of an image as displayed, from its header without decoding the pixels.

    Args:
        source: a file path or the file's bytes.
        max_pixels: refuse larger images as `load_image` would (None: only Pillow's own bomb limit).

    Returns:
        (width, height) after EXIF orientation: orientations 5 to 8 swap the two.

    Raises:
        ImageError: not an image, a corrupt header, or so large that Pillow refuses to open it.
        FileNotFoundError: no file at the path.
    """
    with _image_errors(max_pixels or DEFAULT_MAX_PIXELS), _open(source) as img:
        if max_pixels is not None:
            _check_pixels(img, max_pixels)
        width, height = img.size
        if _orientation(img) in _SWAPS_AXES:
            width, height = height, width
        return width, height


def _to_rgb(img: Image.Image) -> np.ndarray:
    """8-bit RGB pixels of a loaded image of any mode."""
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        values = np.asarray(img).astype(np.float64)
        # 16-bit data fills 0..65535: dividing by 257 maps it onto 0..255 exactly; a plain cast would saturate
        if mode in _SIXTEEN_BIT or (mode == "I" and values.size and values.max() > 255):
            values = values / 257.0
        gray = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 255.0)).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if (mode == "P" and "transparency" in img.info) or mode == "PA":
        # Pillow converts a palette with transparency properly only by way of RGBA; the alpha is dropped next
        img = img.convert("RGBA")
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except ValueError as exc:  # e.g. LAB: a real image, but not one Pillow can turn into RGB
            raise ImageError(f"unsupported image mode {img.mode}: {exc}") from exc
    return np.array(img, dtype=np.uint8).reshape(img.height, img.width, 3)


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image for a model, refusing images over a pixel limit before decoding them.

    Args:
        source: a file path or the file's bytes.
        max_pixels: the most pixels (width * height) to decode.

    Returns:
        (H, W, 3) uint8 RGB, turned upright by its EXIF orientation; alpha is dropped and 16-bit or float
        grayscale is scaled to 0..255.

    Raises:
        ImageError: not an image, truncated, corrupt, or over the limit.
        FileNotFoundError: no file at the path.
    """
    with _image_errors(max_pixels), _open(source) as img:
        _check_pixels(img, max_pixels)
        # decode everything here, inside the error handling, so truncation surfaces now and not in a model
        img.load()
        return _to_rgb(ImageOps.exif_transpose(img))
