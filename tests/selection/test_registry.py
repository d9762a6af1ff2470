from __future__ import annotations

import numpy as np
import pytest

from selection import (BATCH_STEP, DEFAULT, MEASURES, STRATEGIES, Pool, UnknownStrategy, get, get_measure, margin,
                       names, scores)
from selection import registry


def _pool(n: int = 60, k: int = 3, m: int = 6, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    return Pool.from_probs(probs, margin, embeddings=rng.normal(size=(n, 8)),
                           labeled_embeddings=rng.normal(size=(m, 8)), labeled_classes=rng.integers(0, k, m))


def test_names_are_written_once_and_unknown_names_list_them():
    assert names() == sorted(STRATEGIES) and DEFAULT in STRATEGIES
    assert get(" Margin ") is STRATEGIES["margin"]
    with pytest.raises(UnknownStrategy) as e:
        get("most_uncertain")
    assert isinstance(e.value, ValueError)
    assert all(name in str(e.value) for name in names())


def test_every_strategy_has_a_known_measure():
    for s in STRATEGIES.values():
        assert s.measure in MEASURES and get_measure(s.name) is MEASURES[s.measure]
        assert s.summary


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_a_batch_of_distinct_open_items(name):
    pool = _pool()
    order = get(name).order(pool, 10, seed=3)
    assert order.dtype == np.int64 and len(order) == 10 and len(set(order.tolist())) == 10
    assert order.min() >= 0 and order.max() < pool.size
    # deterministic for a seed, never more than the pool holds
    np.testing.assert_array_equal(order, get(name).order(pool, 10, seed=3))
    assert len(get(name).order(_pool(n=4), 10)) == 4
    assert len(get(name).order(pool, 0)) == 0


def test_uncertainty_strategies_take_the_least_confident_and_are_random_without_a_model():
    pool = _pool()
    np.testing.assert_array_equal(get("margin").order(pool, 5), np.argsort(pool.confidence, kind="stable")[:5])
    blind = Pool(embeddings=pool.embeddings)
    np.testing.assert_array_equal(get("entropy").order(blind, 5, seed=1), get("random").order(blind, 5, seed=1))


def test_a_missing_field_is_named():
    with pytest.raises(ValueError, match="badge.*probs"):
        get("badge").order(Pool(confidence=[0.5, 0.2], embeddings=np.eye(2)), 1)
    with pytest.raises(ValueError, match="kcenter.*embeddings"):
        get("kcenter").order(Pool(confidence=[0.5, 0.2]), 1)


def test_hybrid_starts_cold_then_follows_uncertainty():
    pool = _pool(m=0)
    np.testing.assert_array_equal(get("hybrid").order(pool, 5, seed=2), get("typiclust").order(pool, 5, seed=2))
    warm = _pool(m=registry.COLD_START_LABELS)
    np.testing.assert_array_equal(get("hybrid").order(warm, 5, seed=2),
                                  get("diverse_margin").order(warm, 5, seed=2))


def test_scores_put_the_batch_first_in_order_and_stay_confidences():
    conf = np.array([0.9, 0.0, 0.5, 0.3, 1.0])
    s = scores(conf, [2, 0])
    assert s[2] == 0.0 and s[0] == BATCH_STEP
    assert list(np.argsort(s, kind="stable")[:2]) == [2, 0]
    assert s[1] == 2 * BATCH_STEP  # the most uncertain item not in the batch comes right after it
    assert s[3] == 0.3 and s[4] == 1.0 and np.all((s >= 0) & (s <= 1))
    with pytest.raises(ValueError, match="twice"):
        scores(conf, [1, 1])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_before_any_model_every_strategy_still_picks(name):
    # no confidences, probabilities or predictions yet: the model readers fall back to random or a cold start
    blind = Pool(embeddings=np.random.default_rng(0).normal(size=(30, 8)))
    order = get(name).order(blind, 5, seed=1)
    assert len(set(order.tolist())) == 5
