"""Image classification for Label Studio choice controls on images: a base detector's classes until labels exist,
then a logistic-regression head on pooled YOLO features, with the k best classes of every prediction.

Pure ML: arrays, class names and probabilities in and out; this package never imports `backends` or `scripts`.

- `features`: pooled feature vectors of images from a YOLO detector (`Embedder`, over `detection`'s `Detector`).
- `base`: a detector's detections as per-class scores ("base predictions"), and as the prior logits of a head.
- `classifier`: `ImageClassifier` (the head over the base scores), its training with the held-out guard, saving.
- `predict`: a classifier's probabilities for images, and an image's k best, chosen classes and confidence.
- `topk`: the k best classes of a probability row and the chosen ones.
- `version`: a trained version (a classifier per control) on disk.
"""
from __future__ import annotations

from .base import base_logits, base_scores
from .classifier import FitReport, ImageClassifier, NotEnoughLabels, fit_classifier
from .features import Embedder
from .topk import choose, top_k

__all__ = ["Embedder", "FitReport", "ImageClassifier", "NotEnoughLabels", "base_logits", "base_scores", "choose",
           "fit_classifier", "top_k"]
