"""BADGE (Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds", ICLR 2020).

Each item is represented by the gradient its most likely label would give the last layer, (p - onehot(argmax p))
outer x: long where the model is unsure, pointing where the item lies. k-means++ seeding over these gradients picks
a batch that is uncertain and diverse at once, without a weight to tune between the two.
"""
from __future__ import annotations

import numpy as np

from .pool import Pool
from .simple import random_order


def _residuals(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """p - y_hat per item: the loss gradient on the logits if the predicted label were right."""
    a = np.array(probs, dtype=np.float64)
    if multi_label:
        return a - (a >= 0.5)
    a[np.arange(len(a)), a.argmax(axis=1)] -= 1.0
    return a


def badge(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding over gradient embeddings; the first pick is the longest gradient.

    The gradient of item i is a_i outer x_i, so <g_i, g_j> = <a_i, a_j><x_i, x_j>: distances come from two small
    dot products and the (n, k * d) gradients are never built.

    Args:
        pool: needs probs and embeddings.
        n: batch size.
        rng: draws the k-means++ picks.
    """
    n = min(n, pool.size)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if pool.probs is None:  # no model yet
        return random_order(pool, n, rng)
    a = _residuals(pool.probs, pool.multi_label)
    x = np.asarray(pool.embeddings, dtype=np.float64)
    sq = (a * a).sum(axis=1) * (x * x).sum(axis=1)

    def dist2(j: int) -> np.ndarray:
        return np.maximum(sq + sq[j] - 2.0 * (a @ a[j]) * (x @ x[j]), 0.0)

    picks = [int(np.argmax(sq))]
    nearest = dist2(picks[0])
    nearest[picks[0]] = 0.0
    while len(picks) < n:
        total = nearest.sum()
        if total > 0:
            j = int(rng.choice(len(nearest), p=nearest / total))
        else:  # every gradient coincides with a pick: nothing left to spread over
            j = int(rng.choice(np.setdiff1d(np.arange(len(nearest)), picks)))
        picks.append(j)
        nearest = np.minimum(nearest, dist2(j))
        nearest[picks] = 0.0
    return np.array(picks, dtype=np.int64)
