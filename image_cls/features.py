"""Pooled feature vectors of images from a YOLO model (Ultralytics' `YOLO.embed`).

`embed` runs the network up to a layer and average-pools its feature map: with the default layer (the last one
before the detection head, 256 channels for yolov8n) a 256-dimensional vector per image, which a linear head
separates well from a few labels per class (bench/image_cls_bench.py). Vectors are L2-normalised, so that the
head's regularisation means the same whatever the image.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detection import runtime  # offline-safe Ultralytics settings, before ultralytics is imported
from detection.batches import each_on_failure

log = logging.getLogger(__name__)

DEFAULT_IMGSZ = 640


class FeatureError(RuntimeError):
    """The model could not be loaded or could not embed an image."""


class Embedder:
    """A YOLO model used as a feature extractor; calls are serialised (Ultralytics' predictor keeps state)."""

    def __init__(self, yolo, source: str, imgsz: int = DEFAULT_IMGSZ):
        self.yolo = yolo
        self.source = source
        self.imgsz = imgsz
        self._lock = threading.Lock()

    @classmethod
    def load(cls, weights: str | Path, imgsz: int = DEFAULT_IMGSZ) -> "Embedder":
        """Load YOLO `weights` (a path the caller has resolved and may load).

        Raises:
            FeatureError: saying which weights and why.
        """
        from ultralytics import YOLO

        try:
            return cls(YOLO(str(weights)), str(weights), imgsz)
        except Exception as e:
            raise FeatureError(f"cannot load YOLO weights {str(weights)!r}: {type(e).__name__}: {e}") from None

    def features(self, images: Sequence[np.ndarray], batch: int = 8, imgsz: int | None = None) -> np.ndarray:
        """(n, dim) float32 L2-normalised features of RGB uint8 images (H, W, 3), at `imgsz` (default: the
        embedder's)."""
        if not images:
            return np.zeros((0, 0), dtype=np.float32)
        # Ultralytics reads numpy images as OpenCV BGR
        bgr = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR) for im in images]
        out = []
        with self._lock:
            runtime.keep_process_threads()
            try:
                for start in range(0, len(bgr), max(1, batch)):
                    found = self.yolo.embed(bgr[start:start + batch], imgsz=imgsz or self.imgsz, verbose=False)
                    out += [v.detach().cpu().numpy().astype(np.float32).ravel() for v in found]
            finally:
                predictor = getattr(self.yolo, "predictor", None)
                if predictor is not None:  # it keeps the last batch's images until the next call
                    predictor.batch = predictor.results = predictor.dataset = None
        vectors = np.stack(out)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def features_or_errors(self, images: Sequence[np.ndarray], batch: int = 8, imgsz: int | None = None) -> list:
        """Per image its feature vector, or the Exception that image raised: a batch that fails is retried image
        by image, so one bad image costs only itself."""
        return each_on_failure(lambda xs: self.features(xs, batch if len(xs) > 1 else 1, imgsz), images)
