"""The two orders without geometry: random (the baseline) and least confident first (uncertainty sampling)."""
from __future__ import annotations

import numpy as np

from .pool import Pool


def random_order(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random sampling: the baseline every strategy has to beat, and what a strategy that reads the model's
    outputs does before there is a model."""
    return rng.permutation(pool.size)[:max(n, 0)]


def least_confident_first(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uncertainty sampling: lowest confidence first, ties in pool order; no model yet means random."""
    if pool.confidence is None:
        return random_order(pool, n, rng)
    return np.argsort(pool.confidence, kind="stable")[:max(n, 0)]
