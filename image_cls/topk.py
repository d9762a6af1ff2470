"""The k best classes of a probability row, and the classes a prediction chooses."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k(probs: np.ndarray, classes: Sequence[str], k: int, allowed: np.ndarray | None = None
          ) -> list[tuple[str, float]]:
    """The k most probable classes of one row, best first, as (class, probability).

    Args:
        allowed: a boolean mask of the classes that may be listed (e.g. only those a base model found);
            None lists any class with a probability above 0.
    """
    probs = np.asarray(probs, dtype=np.float64)
    mask = probs > 0 if allowed is None else np.asarray(allowed, dtype=bool) & (probs > 0)
    order = [int(j) for j in np.argsort(-probs, kind="stable") if mask[j]]
    return [(classes[j], round(float(probs[j]), 6)) for j in order[:max(0, int(k))]]


def choose(ranked: list[tuple[str, float]], multi: bool, threshold: float = 0.5) -> list[str]:
    """The chosen classes of a ranked list: the best one, or for multi choice every class at or above
    `threshold` (at least the best one); [] when the list is empty."""
    if not ranked:
        return []
    if not multi:
        return [ranked[0][0]]
    return [c for c, p in ranked if p >= threshold] or [ranked[0][0]]
