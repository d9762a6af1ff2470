"""Predicting while the next images are fetched and decoded: one thread loads a request's items in order (fetch,
size from the header, pixel budget, decode) while the caller predicts the ones already loaded.

On CPU the model takes 50-100 ms an image and fetching plus decoding a few ms more; done one after the other, the
two add up, while a second thread hides the smaller under the larger. The decoded images alive at any time (loaded
and waiting, or handed to the caller) are bounded in count (`hold`) and in pixels (one image's limit), so memory
does not grow with the number of tasks: each item is dropped once the caller asks for the next batch.

Batches: Ultralytics letterboxes a batch of images of one shape to their own (stride-rounded) size, but pads a
batch of mixed shapes to a square of `imgsz`: on CPU that costs more than batching saves (a 4:3 photo gets a third
more pixels), and it changes the boxes. So `batches(same_shape=True)` (CPU) groups only images of one shape;
`same_shape=False` (GPU, where a batch costs little more than one image) groups whatever is loaded.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .batches import RELEASE_AFTER_PIXELS, PixelBudget, SizedImage, release_memory
from .images import ImageError, image_size, load_image

log = logging.getLogger(__name__)

LOOKAHEAD = 2  # items decoded ahead of the batch being predicted
_NOTHING = object()  # no item loaded yet

# an item's image files by data key, or the reason (a string) it has none
Fetch = Callable[[int], "dict[str, Path] | str"]


@dataclass
class Item:
    """One item of the request: its index, its decoded images by key (empty on error), or the reason it failed."""

    index: int
    images: dict[str, SizedImage] = field(default_factory=dict)
    error: str | None = None
    pixels: int = 0  # decoded pixels it holds

    @property
    def shape(self) -> tuple:
        """The shapes of its images: items with equal shapes batch without padding."""
        return tuple((k, img.array.shape) for k, img in sorted(self.images.items()) if img.array is not None)


class Holding:
    """The decoded items alive: at most `count` of them and `pixels` pixels together (an item larger than `pixels`
    only when it is alone). `peak` is the most items ever alive at once."""

    def __init__(self, count: int, pixels: int):
        self.limit_count, self.limit_pixels = max(1, count), pixels
        self.count = self.pixels = self.peak = 0
        self._cond = threading.Condition()
        self.closed = False
        self.waiting = False  # the loader waits for room: a batch being filled must not wait for it

    def take(self, pixels: int) -> bool:
        """Wait for room for an item of `pixels`; False when closed meanwhile (nothing taken)."""
        with self._cond:
            while not self.closed and self.count and (self.count >= self.limit_count
                                                      or self.pixels + pixels > self.limit_pixels):
                self.waiting = True
                self._cond.wait()
            self.waiting = False
            if self.closed:
                return False
            self.count += 1
            self.pixels += pixels
            self.peak = max(self.peak, self.count)
            return True

    def give(self, pixels: int) -> None:
        with self._cond:
            self.count -= 1
            self.pixels -= pixels
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class ImagePipeline:
    """A request's items loaded by a background thread, handed out in batches (see the module docstring).

    Args:
        count: items, loaded as `fetch(0)`, `fetch(1)`, ...; `fetch` may raise, which costs only that item.
        hold: the most decoded items alive (loaded ahead plus the batch handed out).
        max_image_pixels: one image's pixel limit, also the most decoded pixels alive (except a single item).
        max_request_pixels: the request's budget, spent in item order; an item over it gets an error.
    """

    def __init__(self, count: int, fetch: Fetch, hold: int, max_image_pixels: int, max_request_pixels: int):
        self.count, self.fetch = count, fetch
        self.max_image_pixels = max_image_pixels
        self.budget = PixelBudget(max_request_pixels)
        self.holding = Holding(hold, max_image_pixels)
        self.decoded = 0  # pixels decoded in all
        self._queue: queue.Queue[Item | None] = queue.Queue()  # bounded by `holding`; None: no more items
        self._thread = threading.Thread(target=self._load_all, name="image-pipeline", daemon=True)
        self._closing = threading.Lock()  # closing and draining vs the loader's last put: no item slips in between

    # -- the loading thread ----------------------------------------------------------------------------------
    def _load_all(self) -> None:
        try:
            for i in range(self.count):
                if self.holding.closed:
                    break
                item = self._load(i)
                with self._closing:  # closed while it loaded: dropped here, as `_close` drained the queue already
                    if self.holding.closed:
                        self._drop(item)
                        break
                    self._queue.put(item)
        finally:
            self._queue.put(None)

    def _load(self, i: int) -> Item:
        try:
            found = self.fetch(i)
            if isinstance(found, str):
                return Item(i, error=found)
            sized = {k: SizedImage(Path(p), *image_size(p, self.max_image_pixels)) for k, p in found.items()}
        except (ImageError, OSError) as e:
            return Item(i, error=str(e))
        except Exception as e:  # a failure on one item must not stop the others
            log.exception("item %s: loading failed", i)
            return Item(i, error=f"loading failed ({type(e).__name__}: {e})")
        pixels = sum(img.pixels for img in sized.values())
        if not self.budget.take(pixels):
            return Item(i, error=f"its images would take the request over the pixel budget of {self.budget.limit} "
                                 "(MAX_REQUEST_PIXELS); ask for fewer tasks at once")
        if not self.holding.take(pixels):
            return Item(i, error="request closed")
        try:
            images = {k: self._decode(img) for k, img in sized.items()}
        except Exception as e:
            self.holding.give(pixels)
            return Item(i, error=str(e) if isinstance(e, (ImageError, OSError)) else
                        f"decoding failed ({type(e).__name__}: {e})")
        self.decoded += pixels
        return Item(i, images, pixels=pixels)

    def _decode(self, img: SizedImage) -> SizedImage:
        array = load_image(img.path, self.max_image_pixels)
        return SizedImage(img.path, array.shape[1], array.shape[0], array)

    # -- the caller's side -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start loading (`batches` does, if not yet)."""
        if self._thread.ident is None:
            self._thread.start()

    def batches(self, batch: int, same_shape: bool = True, fill: bool = False) -> Iterator[list[Item]]:
        """The items in load order, grouped: an item with an error alone; decoded items at most `batch` together,
        of one shape when `same_shape`. Each batch is dropped when the next is asked for.

        Args:
            fill: wait for the next items until the batch is full (GPU: a batch costs about what one image does);
                otherwise (CPU) a batch holds only what is loaded already, so a slow fetch never holds back the
                images before it.
        """
        self.start()
        pending: list[Item | None] = []  # an item taken from the queue that did not fit the batch (or the end)
        try:
            while True:
                first = pending.pop() if pending else self._queue.get()
                if first is None:
                    return
                group = [first]
                while first.error is None and len(group) < max(1, batch):
                    nxt = self._next(fill)
                    if nxt is _NOTHING:
                        break
                    if nxt is None or nxt.error is not None or (same_shape and nxt.shape != first.shape):
                        pending.append(nxt)
                        break
                    group.append(nxt)
                yield group
                for item in group:
                    self._drop(item)
        finally:
            self._close([item for item in pending if item is not None])

    def _next(self, fill: bool) -> Item | None | object:
        """The next loaded item (None: the end), or `_NOTHING` when none is loaded and `fill` is off or the loader
        waits for room (what is held now is all a batch can get)."""
        while True:
            try:
                return self._queue.get(timeout=0.05) if fill else self._queue.get_nowait()
            except queue.Empty:
                if not fill or self.holding.waiting:
                    return _NOTHING

    def _drop(self, item: Item) -> None:
        if item.images:
            item.images.clear()  # the caller may still hold the item: the arrays go now
            self.holding.give(item.pixels)
            item.pixels = 0

    def _close(self, pending: list[Item]) -> None:
        """Stop loading and drop whatever was loaded but not handed out."""
        with self._closing:
            self.holding.close()
            for item in pending:
                self._drop(item)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    self._drop(item)
        if self.decoded > RELEASE_AFTER_PIXELS:
            release_memory()
