"""Pooled feature vectors of images from a YOLO model: `detection.model.Detector.embed` (Ultralytics' `YOLO.embed`)
at the size a head is trained and served at.

`embed` runs the network up to a layer and average-pools its feature map: with the default layer (the last one
before the detection head, 256 channels for yolov8n) a 256-dimensional vector per image, which a linear head
separates well from a few labels per class (bench/image_cls_bench.py). Vectors are L2-normalised, so that the
head's regularisation means the same whatever the image. The detector's own embedding is used, so that a server
holds one YOLO model for base predictions and features alike.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detection.batches import each_on_failure
from detection.model import Detector, ModelLoadError

DEFAULT_IMGSZ = 640


class FeatureError(RuntimeError):
    """The model could not be loaded or could not embed an image."""


class Embedder:
    """A YOLO detector used as a feature extractor (its calls are serialised by the detector)."""

    def __init__(self, detector: Detector, imgsz: int = DEFAULT_IMGSZ):
        self.detector = detector
        self.imgsz = imgsz

    @property
    def source(self) -> str:
        return self.detector.source

    @classmethod
    def load(cls, weights: str | Path, imgsz: int = DEFAULT_IMGSZ) -> "Embedder":
        """Load YOLO `weights` (a path the caller has resolved and may load).

        Raises:
            FeatureError: saying which weights and why.
        """
        try:
            return cls(Detector.load(weights), imgsz)
        except ModelLoadError as e:
            raise FeatureError(str(e)) from None

    def features(self, images: Sequence[np.ndarray], batch: int = 8, imgsz: int | None = None) -> np.ndarray:
        """(n, dim) float32 L2-normalised features of RGB uint8 images (H, W, 3), at `imgsz` (default: the
        embedder's)."""
        return self.detector.embed(list(images), imgsz or self.imgsz, batch)

    def features_or_errors(self, images: Sequence[np.ndarray], batch: int = 8, imgsz: int | None = None) -> list:
        """Per image its feature vector, or the Exception that image raised: a batch that fails is retried image
        by image, so one bad image costs only itself."""
        return each_on_failure(lambda xs: self.features(xs, batch if len(xs) > 1 else 1, imgsz), images)
