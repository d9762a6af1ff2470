"""Streaming many images through a model without holding them all: batches bounded in count and in pixels, a pixel
budget per request, and freed memory handed back to the system afterwards.

Decoded images are large (3 bytes per pixel: 300 MB for a 100 MP image, from a PNG of 100 KB), so a request is
sized from the image headers first, then decoded, predicted and dropped batch by batch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import ImageError, image_size, load_image

log = logging.getLogger(__name__)

RELEASE_AFTER_PIXELS = 20_000_000  # a stream that decoded more hands the freed memory back to the system
_LEFT_OUT = "left out"  # the error of an item given as None: it is not handed out at all


@dataclass
class SizedImage:
    """An image file with its size as displayed (after EXIF rotation), and its pixels once decoded."""

    path: Path
    width: int
    height: int
    array: np.ndarray | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


class PixelBudget:
    """The pixels one request may decode in all; images are admitted in order until the budget is spent."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self.used = 0

    def take(self, pixels: int) -> bool:
        """Admit an image of `pixels` pixels: False (and nothing taken) when it would go over the budget."""
        if self.used + pixels > self.limit:
            return False
        self.used += pixels
        return True


def pixel_batches(sizes: Sequence[int], batch: int, max_pixels: int) -> list[list[int]]:
    """Indices of `sizes` in order, grouped: at most `batch` per group and at most `max_pixels` in all, except that
    an image larger than `max_pixels` makes a group of its own.

    Args:
        sizes: pixels of each image.
        batch: the most images per group (at least 1).
        max_pixels: the most pixels per group.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    pixels = 0
    for i, size in enumerate(sizes):
        if current and (len(current) >= max(1, batch) or pixels + size > max_pixels):
            groups.append(current)
            current, pixels = [], 0
        current.append(i)
        pixels += size
    if current:
        groups.append(current)
    return groups


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def release_memory() -> None:
    """Give freed memory back to the system.

    After large arrays are freed, glibc keeps the pages of its heap (its mmap threshold grows with every large
    free, so later large arrays come from the heap too): a process that decoded a few huge images once stays
    gigabytes larger for ever. `malloc_trim(0)` returns those pages; elsewhere than glibc this only collects.
    """
    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except Exception:  # never fail a request over housekeeping
            log.debug("malloc_trim failed", exc_info=True)


def stream_images(files: Sequence[dict[str, Path] | None], batch: int, max_image_pixels: int,
                  max_request_pixels: int) -> Iterator[tuple[list[int], list[dict[str, SizedImage]], list]]:
    """Decode the images of many items batch by batch: (item indices, their images by key, their errors).

    Each item (one task: its image files by key; None for an item to leave out) is sized from its headers first,
    so that the pixel budget is spent in item order before anything is decoded; an item over it gets an error.
    Items with an error come first, in one group; then each batch (at most `batch` items and `max_image_pixels`
    pixels) is decoded and handed out, and emptied when the caller asks for the next one (so that at most one
    batch of decoded images is held at a time); the freed memory goes back to the system at the end.

    Errors are the reason as a string (without naming the item), or None.
    """
    sized: list[dict[str, SizedImage]] = []
    errors: list[str | None] = []
    budget = PixelBudget(max_request_pixels)
    for found in files:
        sized.append({})
        if found is None:
            errors.append(_LEFT_OUT)
            continue
        try:
            sized[-1] = {k: SizedImage(Path(p), *image_size(p, max_image_pixels)) for k, p in found.items()}
        except (ImageError, OSError) as e:
            errors.append(str(e))
            continue
        pixels = sum(img.pixels for img in sized[-1].values())
        errors.append(None if budget.take(pixels) else
                      f"its images would take the request over the pixel budget of {max_request_pixels} "
                      "(MAX_REQUEST_PIXELS); ask for fewer tasks at once")
    failed = [i for i, e in enumerate(errors) if e is not None and e is not _LEFT_OUT]
    if failed:
        yield failed, [{} for _ in failed], [errors[i] for i in failed]
    ok = [i for i, e in enumerate(errors) if e is None]
    sizes = [sum(img.pixels for img in sized[i].values()) for i in ok]
    decoded = 0
    try:
        for group in pixel_batches(sizes, batch, max_image_pixels):
            idx = [ok[g] for g in group]
            images, batch_errors = [], []
            for i in idx:
                try:
                    images.append({k: _decode(img, max_image_pixels) for k, img in sized[i].items()})
                    batch_errors.append(None)
                except (ImageError, OSError) as e:
                    images.append({})
                    batch_errors.append(str(e))
            decoded += sum(sizes[g] for g in group)
            yield idx, images, batch_errors
            for found in images:  # the caller may still hold the list: empty it, so that the arrays go now
                found.clear()
            images.clear()
    finally:
        if decoded > RELEASE_AFTER_PIXELS:
            release_memory()


def _decode(img: SizedImage, max_pixels: int) -> SizedImage:
    array = load_image(img.path, max_pixels)
    return SizedImage(img.path, array.shape[1], array.shape[0], array)


def each_on_failure(call: Callable[[list], Sequence], items: Sequence) -> list:
    """`call(items)` as a list, or, when the batch raises, `call([item])[0]` item by item, an item that fails giving
    its Exception in its place: one bad image costs only itself."""
    if not items:
        return []
    try:
        return list(call(list(items)))
    except Exception:
        log.warning("batch failed; retrying item by item", exc_info=True)
    out: list = []
    for item in items:
        try:
            out.append(call([item])[0])
        except Exception as e:
            out.append(e)
    return out
