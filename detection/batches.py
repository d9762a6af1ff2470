"""What streaming many images through a model needs (`pipeline.ImagePipeline` streams them): sized images, a pixel
budget per request, freed memory handed back to the system, and a batch retried item by item when it fails.

Decoded images are large (3 bytes per pixel: 300 MB for a 100 MP image, from a PNG of 100 KB), so a request is
sized from the image headers first, then decoded, predicted and dropped batch by batch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RELEASE_AFTER_PIXELS = 20_000_000  # a stream that decoded more hands the freed memory back to the system


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
