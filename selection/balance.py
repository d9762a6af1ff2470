"""Class-balanced exploration: spread the batch over the predicted classes, the least labeled class first.

With a few labels of some classes a model stops predicting the others (their evidence is erased); uncertainty
sampling alone then keeps asking about the classes it already knows. Here each pick goes to the class with the
fewest labels so far (labels plus picks), and within a class to its least confident item (after Aggarwal et al.,
"Active learning for imbalanced datasets", WACV 2020, and the class-balanced sampling of small-text).
"""
from __future__ import annotations

import numpy as np

from .pool import Pool
from .simple import random_order


def class_balanced(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """Round-robin over predicted classes, fewest labeled first; least confident within a class.

    Args:
        pool: needs predicted classes (or probs) and confidence; labeled_classes count as labels given.
        n: batch size.
        rng: breaks ties between equally labeled classes whose candidates are equally confident.
    """
    n = min(n, pool.size)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if pool.predicted is None and pool.probs is None:  # no model yet
        return random_order(pool, n, rng)
    predicted = pool.predicted if pool.predicted is not None else pool.probs.argmax(axis=1)
    conf = pool.confidence if pool.confidence is not None else np.zeros(pool.size)
    k = max(pool.n_classes(), int(predicted.max()) + 1)
    counts = np.zeros(k)
    if pool.labeled_classes is not None and len(pool.labeled_classes):
        counts += np.bincount(pool.labeled_classes, minlength=k)[:k]
    queues = {c: list(np.flatnonzero(predicted == c)[np.argsort(conf[predicted == c], kind="stable")])
              for c in np.unique(predicted)}
    jitter = rng.random(k)
    picks: list[int] = []
    while len(picks) < n:
        c = min((c for c, q in queues.items() if q), key=lambda c: (counts[c], conf[queues[c][0]], jitter[c]))
        picks.append(int(queues[c].pop(0)))
        counts[c] += 1
    return np.array(picks, dtype=np.int64)
