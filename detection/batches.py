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
from collections.abc import Sequence

log = logging.getLogger(__name__)


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
