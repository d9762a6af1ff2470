"""The recognizer's confidence made a probability that a line is read right, from the project's corrections:
Platt scaling (a logistic regression on the logit of the raw confidence), kept only when it predicts held-out
lines better (Brier score) than the raw confidence does."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_LINES = 20  # fewer corrected lines fit noise
_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass
class Calibration:
    """p(right) = sigmoid(a * logit(confidence) + b)."""

    a: float = 1.0
    b: float = 0.0

    def __call__(self, confidence: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.a * _logit(np.array(confidence)) + self.b))))

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b}


def brier(probabilities: Sequence[float], right: Sequence[bool]) -> float:
    """Mean squared gap between the probabilities and what happened (lower is better)."""
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(right, dtype=np.float64)
    return float(np.mean((p - y) ** 2))


def fit(confidences: Sequence[float], right: Sequence[bool]) -> Calibration | None:
    """Platt scaling of `confidences` to `right`; None with fewer than MIN_LINES lines or only one outcome."""
    y = np.asarray(right, dtype=int)
    if len(y) < MIN_LINES or y.min() == y.max():
        return None
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0).fit(_logit(np.asarray(confidences))[:, None], y)
    return Calibration(float(model.coef_[0, 0]), float(model.intercept_[0]))
