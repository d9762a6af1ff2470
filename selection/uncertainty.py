"""Uncertainty measures: turn class probabilities into a per-item confidence.

Every measure shares one signature, `measure(probs, multi_label=False) -> confidence`, and returns a
confidence in [0, 1] where 1 means certain. Label Studio orders tasks by prediction score, lowest first,
so the task the model is least sure about is shown to the annotator first.

`probs` is an (n, k) array. Single-label: each row is a distribution over k classes. Multi-label: each
column is an independent probability that the label applies; each label is a binary problem and the
row's confidence is that of its least confident label.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Measure = Callable[..., np.ndarray]


def _rows(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """Clean probabilities: float, NaN-free, in [0, 1], rows summing to 1 for single-label.

    Args:
        probs: (n, k) class probabilities.
        multi_label: whether columns are independent label probabilities.

    Returns:
        A float64 (n, k) array.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be a 2-D (n, k) array, got shape {p.shape}")
    p = np.clip(np.nan_to_num(p, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if multi_label or p.shape[1] == 0:
        return p
    total = p.sum(axis=1, keepdims=True)
    # A row that carries no probability at all (all zeros or NaN) says nothing: treat it as uniform.
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])


def _binary(p: np.ndarray) -> np.ndarray:
    """Per-label (p, 1 - p) distributions of a multi-label array, shape (n, k, 2)."""
    return np.stack([p, 1.0 - p], axis=-1)


def _finish(conf: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] so rounding never leaves the range Label Studio expects."""
    return np.clip(np.nan_to_num(conf, nan=0.0), 0.0, 1.0)


def _least_confidence(dist: np.ndarray) -> np.ndarray:
    k = dist.shape[-1]
    if k <= 1:
        return np.ones(dist.shape[:-1])
    return (dist.max(axis=-1) - 1.0 / k) / (1.0 - 1.0 / k)


def _margin(dist: np.ndarray) -> np.ndarray:
    if dist.shape[-1] <= 1:
        return np.ones(dist.shape[:-1])
    top2 = np.sort(dist, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def _entropy(dist: np.ndarray) -> np.ndarray:
    k = dist.shape[-1]
    if k <= 1:
        return np.ones(dist.shape[:-1])
    # 0 * log 0 is taken as 0: a class with no probability adds no uncertainty.
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(dist > 0, dist * np.log(dist), 0.0).sum(axis=-1)
    return 1.0 - h / np.log(k)


def _apply(score: Callable[[np.ndarray], np.ndarray], probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """Run a per-distribution score over single- or multi-label probabilities."""
    p = _rows(probs, multi_label)
    n, k = p.shape
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    if k == 0:
        # No classes means nothing to be unsure about.
        return np.ones(n, dtype=np.float64)
    if multi_label:
        return _finish(score(_binary(p)).min(axis=1))
    return _finish(score(p))


def least_confidence(probs: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Confidence from the top class probability, rescaled so a uniform row gives 0.

    Args:
        probs: (n, k) class probabilities.
        multi_label: columns are independent label probabilities.

    Returns:
        (n,) confidences in [0, 1]: (pmax - 1/k) / (1 - 1/k).
    """
    return _apply(_least_confidence, probs, multi_label)


def margin(probs: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Confidence as the gap between the two most probable classes.

    Args:
        probs: (n, k) class probabilities.
        multi_label: columns are independent label probabilities.

    Returns:
        (n,) confidences in [0, 1]: p1 - p2.
    """
    return _apply(_margin, probs, multi_label)


def entropy(probs: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Confidence as one minus the normalised entropy of the row.

    Args:
        probs: (n, k) class probabilities.
        multi_label: columns are independent label probabilities.

    Returns:
        (n,) confidences in [0, 1]: 1 - H(p) / log k.
    """
    return _apply(_entropy, probs, multi_label)


MEASURES: dict[str, Measure] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}


def combine(confidences: list[np.ndarray]) -> np.ndarray:
    """A task's confidence when several controls each have one: the least confident control decides.

    Args:
        confidences: per-control confidence arrays of the same shape (NaN means "no prediction").

    Returns:
        The elementwise minimum, in [0, 1]; a task no control scored gets 0 so it is shown early.
    """
    if not confidences:
        return np.zeros(0, dtype=np.float64)
    arrays = [np.asarray(c, dtype=np.float64) for c in confidences]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"confidences have different shapes: {sorted(shapes)}")
    with np.errstate(invalid="ignore"):
        lowest = np.fmin.reduce(np.stack(arrays), axis=0)
    return np.clip(np.nan_to_num(lowest, nan=0.0), 0.0, 1.0)
