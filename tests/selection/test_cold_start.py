from __future__ import annotations

import numpy as np

from selection import Pool
from selection.cold_start import typical_clusters, typicality


def _blobs(sizes, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 12)) * 5
    emb = np.vstack([c + rng.normal(size=(s, 12)) * spread for c, s in zip(centres, sizes)])
    return emb, np.repeat(np.arange(len(sizes)), sizes)


def test_typicality_is_highest_in_the_dense_middle():
    rng = np.random.default_rng(0)
    points = np.vstack([np.zeros((1, 2)), rng.normal(size=(40, 2)), [[8.0, 8.0]]])
    t = typicality(points, neighbours=5)
    assert t[-1] == t.min()  # the outlier
    assert t[0] > np.median(t)  # the centre
    # chunked rows give the same answer as one block
    np.testing.assert_allclose(typicality(points, 5, chunk=7), t)
    assert list(typicality(points[:1])) == [1.0]


def test_one_typical_pick_per_cluster_largest_first_and_labeled_clusters_last():
    emb, blob = _blobs([40, 25, 15])
    picks = typical_clusters(Pool(embeddings=emb), 3, np.random.default_rng(0))
    assert [blob[i] for i in picks] == [0, 1, 2]
    # no outlier: each pick is among the most typical of its blob
    for i in picks:
        members = np.flatnonzero(blob == blob[i])
        assert typicality(emb[members])[list(members).index(i)] >= np.quantile(typicality(emb[members]), 0.5)
    # the largest blob already labeled: the other two come first
    labeled = emb[blob == 0][:3] + 0.01
    picks = typical_clusters(Pool(embeddings=emb, labeled_embeddings=labeled), 2, np.random.default_rng(0))
    assert sorted(blob[i] for i in picks) == [1, 2]


def test_more_picks_than_clusters_and_tiny_pools():
    emb, _ = _blobs([5, 5])
    picks = typical_clusters(Pool(embeddings=emb), 10, np.random.default_rng(0))
    assert sorted(picks.tolist()) == list(range(10))
    assert len(typical_clusters(Pool(embeddings=emb[:1]), 3, np.random.default_rng(0))) == 1


def test_wide_vectors_are_clustered_on_their_principal_components():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 384)) * 3
    emb = np.vstack([c + rng.normal(size=(s, 384)) * 0.3 for c, s in zip(centres, [50, 30, 20])])
    blob = np.repeat(np.arange(3), [50, 30, 20])
    picks = typical_clusters(Pool(embeddings=emb), 3, np.random.default_rng(0))
    assert [blob[i] for i in picks] == [0, 1, 2]
