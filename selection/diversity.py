"""Batch selection that spreads a batch over the embedding space, so its items are not near-duplicates.

- `kcenter_order`: greedy k-center weighted by uncertainty (uncertain and far from what is picked or labeled).
- `coreset`: plain greedy k-center, the core-set of Sener & Savarese (ICLR 2018): diversity only.
- `diverse_uncertain`: the most uncertain candidates clustered with k-means weighted by uncertainty, one pick
  per cluster (Zhdanov, "Diverse mini-batch active learning", 2019; the idea of cluster-margin, Citovsky et al.
  2021): uncertainty decides what is worth labeling, the clusters keep the batch from repeating itself.
"""
from __future__ import annotations

import numpy as np

from .pool import Pool
from .simple import random_order


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so dot products are cosine similarities."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def kcenter_order(confidence: np.ndarray, embeddings: np.ndarray, k: int,
                  centers: np.ndarray | None = None) -> list[int]:
    """Indices of a diverse, uncertain batch of at most k items, in pick order.

    Each pick maximises (uncertainty + 0.05) * (cosine distance to the nearest item already picked or labeled):
    a near-duplicate of a picked item has distance about 0 and waits until nothing else is left.

    Args:
        confidence: (n,) confidences in [0, 1].
        embeddings: (n, d) vectors.
        k: batch size.
        centers: (m, d) vectors of labeled items, covered already.
    """
    n = len(confidence)
    if n == 0 or k <= 0:
        return []
    emb = normalize(embeddings)
    weight = (1.0 - np.clip(np.asarray(confidence, dtype=np.float64), 0, 1)) + 0.05
    nearest = np.full(n, 1.0)
    if centers is not None and len(centers):
        nearest = np.clip(1.0 - (emb @ normalize(centers).T).max(axis=1), 0.0, 2.0)
    picked: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        gain = np.where(available, weight * nearest, -np.inf)
        i = int(np.argmax(gain))
        picked.append(i)
        available[i] = False
        nearest = np.minimum(nearest, np.clip(1.0 - emb @ emb[i], 0.0, 2.0))
    return picked


def kcenter(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uncertainty-weighted k-center; without confidences every item weighs the same."""
    conf = pool.confidence if pool.confidence is not None else np.zeros(pool.size)
    return np.array(kcenter_order(conf, pool.embeddings, n, pool.labeled_embeddings), dtype=np.int64)


def coreset(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-center on the embeddings alone; with nothing labeled it starts from the most central item."""
    emb = normalize(pool.embeddings)
    if len(emb) == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    centers = pool.labeled_embeddings
    if centers is None or not len(centers):
        centers = emb[[int(np.argmax(emb @ normalize(emb.mean(axis=0, keepdims=True))[0]))]]
    return np.array(kcenter_order(np.zeros(len(emb)), emb, n, centers), dtype=np.int64)


def diverse_uncertain(pool: Pool, n: int, rng: np.random.Generator, candidates: int = 10) -> np.ndarray:
    """The `candidates * n` least confident items in n uncertainty-weighted k-means clusters; from each cluster the
    least confident item, the batch in order of confidence.

    Args:
        pool: needs confidence and embeddings.
        n: batch size.
        rng: seeds k-means.
        candidates: how many candidates per pick (the β of Zhdanov 2019).
    """
    conf = pool.confidence
    if conf is None:  # no model yet
        return random_order(pool, n, rng)
    size = min(pool.size, max(n, candidates * n))
    if n <= 0 or size == 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argsort(conf, kind="stable")[:size]
    if size <= n:
        return top
    emb = normalize(pool.embeddings[top])
    weight = 1.0 - np.clip(conf[top], 0.0, 1.0) + 1e-3
    from sklearn.cluster import KMeans  # here, so that `import selection` costs only numpy

    labels = KMeans(n_clusters=n, n_init=1, random_state=int(rng.integers(2**31))).fit_predict(emb,
                                                                                              sample_weight=weight)
    # `top` is sorted by confidence, so the first member of each cluster is its least confident one.
    firsts = sorted((top[np.flatnonzero(labels == c)[0]] for c in np.unique(labels)), key=lambda i: (conf[i], i))
    # k-means leaves a cluster empty only on duplicate points: fill up with the next least confident.
    rest = [i for i in top if i not in set(firsts)][:n - len(firsts)]
    return np.array(firsts + rest, dtype=np.int64)
