from __future__ import annotations

import numpy as np

from selection import Pool
from selection.badge import _residuals, badge


def test_gradient_distances_match_the_explicit_gradients():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=20)
    x = rng.normal(size=(20, 5))
    g = np.einsum("nk,nd->nkd", _residuals(probs, False), x).reshape(20, -1)
    picks = badge(Pool(probs=probs, embeddings=x), 1, rng)
    # the first pick is the longest gradient
    assert picks[0] == np.argmax((g * g).sum(axis=1))


def test_uncertain_items_are_preferred_and_duplicates_never_picked_twice():
    x = np.vstack([np.eye(4), np.eye(4)[:1]])  # item 4 duplicates item 0
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.55, 0.45], [1.0, 0.0], [0.5, 0.5]])
    second = []
    for seed in range(200):
        picks = badge(Pool(probs=probs, embeddings=x), 3, np.random.default_rng(seed))
        assert picks[0] in {0, 1, 4}  # the longest gradients
        assert not {0, 4} <= set(picks.tolist())  # identical gradients: distance 0 after the first
        second.append(picks[1])
    # a certain prediction has a zero gradient: it is drawn, but less often than an uncertain item
    counts = np.bincount(second, minlength=5)
    assert counts[3] < counts[2]
    assert len(badge(Pool(probs=probs[:0], embeddings=x[:0]), 3, np.random.default_rng(0))) == 0


def test_multi_label_residuals():
    np.testing.assert_allclose(_residuals(np.array([[0.9, 0.2]]), True), [[-0.1, 0.2]])
    np.testing.assert_allclose(_residuals(np.array([[0.9, 0.1]]), False), [[-0.1, 0.1]])
