"""Cold start: typical, diverse items, picked from the embeddings alone while the model knows little.

TypiClust (Hacohen, Dekel & Weinshall, "Active learning on a budget", ICML 2022): cluster all items into
(labeled + batch) clusters with k-means; from each of the largest clusters that hold no label yet, take its most
typical item, the one with the densest neighbourhood. With few labels the model's uncertainty is noise, and a label
on a typical item of an unlabeled region teaches more than one on an outlier (which k-center and uncertainty favour).
"""
from __future__ import annotations

import numpy as np

from .diversity import normalize
from .pool import Pool

MAX_CLUSTERS = 500  # as in TypiClust: beyond it clusters get too small for typicality to mean anything
CLUSTER_DIMS = 32  # k-means runs on this many principal components: 5x faster than on 384-d MiniLM vectors
NEIGHBOURS = 20  # the paper's K for typicality


def typicality(vectors: np.ndarray, neighbours: int = NEIGHBOURS, chunk: int = 1024) -> np.ndarray:
    """Inverse mean Euclidean distance of each vector to its `neighbours` nearest others (itself excluded).

    Rows are done `chunk` at a time, so a cluster of many thousand items needs no n x n matrix.
    """
    v = np.asarray(vectors, dtype=np.float64)
    if len(v) <= 1:
        return np.ones(len(v))
    k = min(neighbours, len(v) - 1)
    sq = (v * v).sum(axis=1)
    out = np.empty(len(v))
    for start in range(0, len(v), chunk):
        rows = slice(start, start + chunk)
        dist = np.sqrt(np.maximum(sq[rows, None] + sq[None, :] - 2.0 * v[rows] @ v.T, 0.0))
        # the k + 1 smallest of a row include the vector itself at distance 0
        nearest = np.partition(dist, k, axis=1)[:, :k + 1]
        out[rows] = 1.0 / (nearest.sum(axis=1) / k + 1e-12)
    return out


def _kmeans(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster labels of k-means with k clusters, on the leading principal components when there are more."""
    from sklearn.cluster import KMeans  # here, so that `import selection` costs only numpy
    from sklearn.decomposition import PCA

    if vectors.shape[1] > CLUSTER_DIMS and len(vectors) > CLUSTER_DIMS:
        vectors = PCA(CLUSTER_DIMS, random_state=seed).fit_transform(vectors)
    return KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(vectors)


def typical_clusters(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """TypiClust: the most typical open item of each of the largest clusters with the fewest labels.

    Args:
        pool: needs embeddings; labeled_embeddings count as covering their clusters.
        n: batch size.
        rng: seeds k-means.
    """
    n = min(n, pool.size)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    open_emb = normalize(pool.embeddings)
    labeled = pool.labeled_embeddings if pool.labeled_embeddings is not None else np.zeros((0, open_emb.shape[1]))
    vectors = np.vstack([open_emb, normalize(labeled)]) if len(labeled) else open_emb
    k = min(len(vectors), len(labeled) + n, MAX_CLUSTERS)
    clusters = _kmeans(vectors, k, int(rng.integers(2**31)))
    covered = np.bincount(clusters[len(open_emb):], minlength=k).astype(np.float64)
    sizes = np.bincount(clusters, minlength=k)
    taken = np.zeros(len(open_emb), dtype=bool)
    picks: list[int] = []
    while len(picks) < n:
        has_open = np.bincount(clusters[:len(open_emb)][~taken], minlength=k) > 0
        # fewest labels first, then the largest cluster: a big region nobody has labeled teaches most
        c = max(np.flatnonzero(has_open), key=lambda c: (-covered[c], sizes[c], -c))
        members = np.flatnonzero(clusters == c)
        typical = typicality(vectors[members])
        usable = members < len(open_emb)
        usable[usable] = ~taken[members[usable]]
        best = int(members[usable][np.argmax(typical[usable])])
        picks.append(best)
        taken[best] = True
        covered[c] += 1
    return np.array(picks, dtype=np.int64)
