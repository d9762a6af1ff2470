"""The guard: a control's new head judged against the served classifier's recipe and zero-shot, on the same
held-out folds, so that a version that predicts worse is not published.

Each side is judged on what it serves: a single-choice head with centroids serves its product with the centroid
classifier (`centroids.served_product`), and its out-of-fold predictions take each fold's centroids from that
fold's training labels only (`centroids.out_of_fold`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import centroids, heads, zero_shot
from .controls import ControlSpec


def judge(
    spec: ControlSpec, E: np.ndarray, zs_logits: np.ndarray, y: np.ndarray, splits: list,
    candidate: dict[str, float], candidate_proba: np.ndarray, served_recipe: tuple[float, float] | None,
    tolerance: float, max_iter: int, prototypes: np.ndarray | None = None, served_centroids: bool = False,
) -> dict[str, Any]:
    """The new head against the served classifier's recipe and zero-shot, on the same held-out folds.

    Judged by accuracy among the labels the answers use ("known_accuracy", see `heads.score`): all three give
    the other labels zero-shot's probability.

    Args:
        E, zs_logits, y: the control's training embeddings, zero-shot logits and targets.
        splits: the folds the candidate was cross-validated on.
        candidate, candidate_proba: the candidate's scores and out-of-fold probabilities (what it would serve).
        served_recipe: (C, zero-shot weight) of the served classifier's head, None when it is zero-shot.
        tolerance: how much worse the candidate may be on top of one standard error.
        prototypes: the control's zero-shot prototypes, for the served version's fold-local centroids.
        served_centroids: the served version serves its head's product with centroids (a version saved before
            centroids were kept serves its head alone).

    Returns:
        {"metric", "candidate", "served", "zero_shot" (scores, see `heads.score`), "served_mode", "worse"
        (bool), "reason" (why it is worse, else "")}.
    """
    zs_proba = zero_shot.sigmoid(zs_logits) if spec.multi else zero_shot.softmax(zs_logits)
    references = [("zero-shot", zs_proba)]
    if served_recipe is not None:
        proba = heads.out_of_fold(E, zs_logits, y, spec.multi, splits, *served_recipe, max_iter)
        if served_centroids and prototypes is not None and not spec.multi:
            proba = centroids.out_of_fold(proba, E, y, prototypes, splits)
        references.insert(0, ("the served version", proba))
    mine = heads.known_correct(candidate_proba, y, spec.multi)
    scores: dict[str, dict[str, float]] = {}
    reasons = []
    for name, proba in references:
        scores[name] = heads.score(proba, y, spec.multi)
        margin = worse_by(mine, heads.known_correct(proba, y, spec.multi), tolerance)
        if margin is not None:
            reasons.append(f"{spec.name}: cross-validated accuracy {candidate['known_accuracy']:.3f} below "
                           f"{name}'s {scores[name]['known_accuracy']:.3f} on the same {len(splits)} folds of "
                           f"{len(y)} labels (by more than {margin:.3f}, one standard error)")
    zs_scores = scores["zero-shot"]
    return {"metric": "known_accuracy", "candidate": candidate, "served": scores.get("the served version", zs_scores),
            "zero_shot": zs_scores, "served_mode": "trained" if served_recipe is not None else "zero_shot",
            "worse": bool(reasons), "reason": "; ".join(reasons)}


def worse_by(mine: np.ndarray, theirs: np.ndarray, tolerance: float) -> float | None:
    """The margin `mine` fell short by, when its per-label correctness is worse than `theirs` beyond the noise:
    the mean paired difference below minus one standard error (and the tolerance); None when it is not worse.
    With a dozen labels a candidate level with the reference is kept."""
    diff = mine - theirs
    margin = max(tolerance, float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0)
    return margin if diff.mean() < -margin else None
