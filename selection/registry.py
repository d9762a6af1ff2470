"""The strategies by name: the only place their names are written.

Every strategy is `select(pool, n, rng) -> indices`: at most n indices into the pool's open items, the one to label
first first (the signature of modAL's query strategies and small-text's `QueryStrategy.query`, over arrays instead
of a model). Each also names the uncertainty measure behind the confidence a backend writes per task: Label Studio
sorts by that score, and a batch-aware strategy (its order is not the confidence order) writes its order into the
scores with `scores`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .badge import badge
from .balance import class_balanced
from .cold_start import typical_clusters
from .diversity import coreset, diverse_uncertain, kcenter
from .pool import Pool
from .simple import least_confident_first, random_order
from .uncertainty import MEASURES, Measure

Select = Callable[[Pool, int, np.random.Generator], np.ndarray]
MODEL_OUTPUTS = frozenset({"confidence", "probs", "predicted"})
BATCH_STEP = 1e-6  # score gap between consecutive picks of a batch: below any confidence worth showing
COLD_START_LABELS = 30  # hybrid: labels below which the model's uncertainty is noise (measured in the bench)


class UnknownStrategy(ValueError):
    """A strategy name that is not in `STRATEGIES`; the message lists the known ones."""


def hybrid(pool: Pool, n: int, rng: np.random.Generator) -> np.ndarray:
    """TypiClust's cold start until `COLD_START_LABELS` labels, then uncertainty spread over clusters."""
    if pool.confidence is None or pool.labeled < COLD_START_LABELS:
        return typical_clusters(pool, n, rng)
    return diverse_uncertain(pool, n, rng)


@dataclass(frozen=True)
class Strategy:
    """A named strategy.

    Attributes:
        name: its name in `STRATEGIES`, the `uncertainty` param and `sync.py rank --strategy`.
        select: picks the batch.
        measure: name of the uncertainty measure (in `MEASURES`) behind the per-task confidence.
        needs: pool fields it cannot do without ("embeddings") and, once a model has said anything about the pool,
            the model outputs it reads ("confidence", "probs", "predicted"); before that (no model yet) a strategy
            that reads them falls back to random or to its cold start.
        batch_aware: its order differs from the confidence order, so the order must be written into the scores.
        summary: one line for help texts.
    """

    name: str
    select: Select
    measure: str
    needs: frozenset[str]
    batch_aware: bool
    summary: str

    def order(self, pool: Pool, n: int, seed: int = 0) -> np.ndarray:
        """The batch: indices into the pool's open items, in pick order.

        Raises:
            ValueError: the pool lacks a field the strategy needs.
        """
        blind = pool.confidence is None and pool.probs is None and pool.predicted is None  # no model yet
        missing = sorted(f for f in self.needs if getattr(pool, f) is None
                         and not (f == "predicted" and pool.probs is not None)
                         and not (blind and f in MODEL_OUTPUTS))
        if missing:
            raise ValueError(f"strategy {self.name!r} needs {', '.join(missing)}, which the pool does not have")
        picked = np.asarray(self.select(pool, n, np.random.default_rng(seed)), dtype=np.int64)
        return picked[:max(min(n, pool.size), 0)]


def _strategies(*items: Strategy) -> dict[str, Strategy]:
    return {s.name: s for s in items}


_C, _E = frozenset({"confidence"}), frozenset({"embeddings"})
STRATEGIES: dict[str, Strategy] = _strategies(
    Strategy("least_confidence", least_confident_first, "least_confidence", _C, False,
             "lowest top-class probability first"),
    Strategy("margin", least_confident_first, "margin", _C, False,
             "smallest gap between the two most probable classes first"),
    Strategy("entropy", least_confident_first, "entropy", _C, False,
             "highest entropy of the class distribution first"),
    Strategy("random", random_order, "least_confidence", frozenset(), True, "random order (the baseline)"),
    Strategy("kcenter", kcenter, "least_confidence", _C | _E, True,
             "uncertain and far from anything picked or labeled (uncertainty-weighted k-center)"),
    Strategy("coreset", coreset, "least_confidence", _E, True, "far from anything picked or labeled (k-center)"),
    Strategy("typiclust", typical_clusters, "least_confidence", _E, True,
             "the most typical item of each large unlabeled cluster (cold start)"),
    Strategy("badge", badge, "margin", _E | {"probs"}, True,
             "k-means++ over the gradients the predicted labels would give"),
    Strategy("class_balanced", class_balanced, "margin", _C | {"predicted"}, True,
             "least labeled predicted class first, least confident within it"),
    Strategy("diverse_margin", diverse_uncertain, "margin", _C | _E, True,
             "one pick per cluster of the least confident by margin"),
    Strategy("hybrid", hybrid, "margin", _C | _E, True,
             f"typiclust below {COLD_START_LABELS} labels, then diverse_margin"),
)
# The best measured (bench/selection_bench.py, bench/results/selection.json): area under the learning curve over
# 20-200 labels +0.060 over random on TREC-6 and +0.012 on SST-2, 95 % of full-pool accuracy with 0.47x random's
# labels on SST-2, never worse than random beyond the seed spread. It needs no embeddings, so it ranks any project.
DEFAULT = "class_balanced"


def names() -> list[str]:
    """The known strategy names, sorted."""
    return sorted(STRATEGIES)


def get(name: str) -> Strategy:
    """A strategy by name (case and surrounding spaces ignored).

    Raises:
        UnknownStrategy: the name is not known; the message lists the known ones.
    """
    key = str(name).strip().lower()
    if key not in STRATEGIES:
        raise UnknownStrategy(f"unknown selection strategy {name!r}; choose one of: {', '.join(names())}")
    return STRATEGIES[key]


def get_measure(name: str) -> Measure:
    """The per-task confidence function of a strategy (for a backend scoring tasks one request at a time)."""
    return MEASURES[get(name).measure]


def scores(confidence: np.ndarray, order: np.ndarray | list[int], step: float = BATCH_STEP) -> np.ndarray:
    """Scores that sort the batch first, in its order, and every other item by its confidence.

    The i-th pick gets i * step; every other item keeps its confidence but at least len(order) * step, so the
    batch stays on top whatever the confidences. All scores stay in [0, 1].
    """
    conf = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0), 0.0, 1.0)
    order = np.asarray(order, dtype=np.int64)
    if len(np.unique(order)) != len(order):
        raise ValueError("the order names an item twice")
    out = np.maximum(conf, step * len(order))
    out[order] = np.arange(len(order)) * step
    return np.clip(out, 0.0, 1.0)
