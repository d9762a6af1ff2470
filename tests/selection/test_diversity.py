from __future__ import annotations

import numpy as np

from selection import Pool
from selection.diversity import coreset, diverse_uncertain, kcenter_order, normalize


def _copies(seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(6, 16))
    dup = base[0] + rng.normal(scale=1e-3, size=(4, 16))  # four near-copies of item 0
    return base, np.vstack([base, dup])


def test_kcenter_skips_near_duplicates_and_starts_with_the_least_confident():
    base, emb = _copies()
    conf = np.array([0.05, 0.5, 0.6, 0.7, 0.8, 0.9, 0.06, 0.07, 0.08, 0.09])
    order = kcenter_order(conf, emb, 5)
    assert order[0] == 0
    assert not set(order) & {6, 7, 8, 9}
    # pure uncertainty would have put the copies right behind item 0
    assert list(np.argsort(conf)[:5]) == [0, 6, 7, 8, 9]
    # a labeled item counts as covered: its near-copies go last
    assert 0 not in kcenter_order(conf, emb, 3, centers=base[:1])
    assert kcenter_order(conf[:0], emb[:0], 3) == [] and kcenter_order(conf, emb, 0) == []


def test_coreset_covers_the_space_and_ignores_confidence():
    base, emb = _copies()
    order = coreset(Pool(confidence=np.zeros(10), embeddings=emb), 6, np.random.default_rng(0))
    # six picks over six distinct points and four copies of one of them: at most one from the copies' group
    assert len(set(order.tolist()) & {0, 6, 7, 8, 9}) <= 1
    assert len(coreset(Pool(embeddings=emb[:0]), 3, np.random.default_rng(0))) == 0


def test_diverse_uncertain_takes_one_of_each_uncertain_cluster():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 8)) * 10
    emb = np.vstack([c + rng.normal(size=(10, 8)) * 0.1 for c in centres])
    conf = np.full(30, 0.9)
    conf[:10] = np.linspace(0.01, 0.05, 10)  # cluster 0 holds the ten least confident items
    conf[10:20] = np.linspace(0.2, 0.3, 10)
    order = diverse_uncertain(Pool(confidence=conf, embeddings=emb), 3, rng, candidates=10)
    # pure uncertainty would take three items of cluster 0; this takes the least confident of three clusters
    assert sorted(i // 10 for i in order) == [0, 1, 2]
    assert order[0] == 0 and order[1] == 10
    assert list(diverse_uncertain(Pool(confidence=conf[:2], embeddings=emb[:2]), 3, rng)) == [0, 1]


def test_normalize_keeps_zero_rows():
    np.testing.assert_allclose(normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])
