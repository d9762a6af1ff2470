"""Predicting a control's classes for images: a classifier's probabilities from base scores and features, the
k best classes, the chosen ones and the image's confidence."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .classifier import ImageClassifier
from .topk import choose, top_k


@dataclass
class Prediction:
    """One image's prediction: the k best (class, probability), the chosen classes (none when nothing may be
    predicted) and the confidence the strategy gives it (NaN without a prediction)."""

    ranked: list[tuple[str, float]]
    chosen: list[str]
    confidence: float


def probabilities(clf: ImageClassifier, scores: Sequence, features: Sequence) -> list:
    """Per image (probabilities, allowed classes), or the Exception its base scores or features raised.

    Args:
        scores: per image its base scores, or an Exception.
        features: per image its feature vector, an Exception, or None (a classifier without a head needs none).
    """
    rows: list = []
    for s, f in zip(scores, features):
        bad = s if isinstance(s, Exception) else f if isinstance(f, Exception) else None
        if bad is not None:
            rows.append(bad)
            continue
        f = None if f is None else f[None, :]
        rows.append((clf.proba(f, s[None, :])[0], clf.allowed(s[None, :])[0]))
    return rows


def predict_one(classes: list[str], multi: bool, proba: np.ndarray, allowed: np.ndarray, k: int, threshold: float,
                strategy: Callable[..., np.ndarray]) -> Prediction:
    """The prediction of one image from its probabilities over `classes` and the classes it may name.

    Args:
        strategy: a selection measure, (probabilities (1, n), multi_label=...) -> (1,) confidences.
    """
    ranked = top_k(proba, classes, k, allowed)
    chosen = choose(ranked, multi, threshold)
    if not chosen:
        return Prediction(ranked, [], float("nan"))  # nothing known of this image: as uncertain as it gets
    p = np.where(allowed, proba, 0.0)
    if not multi:
        p = p / p.sum()
    return Prediction(ranked, chosen, float(strategy(p[None, :], multi_label=multi)[0]))
