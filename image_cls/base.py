"""Base predictions: what a detector found in an image, as a score per class of the control.

A class's score is the highest confidence among the boxes of the detector classes it stands for (the caller maps
detector classes onto the control's classes); a class no box stands for scores 0. Scores are independent (an
image holds a person and a dog); nothing is invented for classes the detector does not know.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from detection.predict import Plan, run_plans

# A head builds on the base scores as fixed logits; scores are clipped into [FLOOR, 1 - FLOOR] first, so that a
# class the detector did not see is unlikely, not impossible (its logit stays finite).
FLOOR = 0.01


def base_scores(found: Sequence[Iterable[tuple[int, float]]], n_classes: int) -> np.ndarray:
    """(n_images, n_classes) scores from each image's (class index, confidence) pairs."""
    scores = np.zeros((len(found), n_classes), dtype=np.float64)
    for i, pairs in enumerate(found):
        for cls, conf in pairs:
            scores[i, cls] = max(scores[i, cls], float(conf))
    return scores


def plan_scores(plan: Plan | None, classes: Sequence[str], arrays: Sequence[np.ndarray], imgsz: int | None = None,
                batch: int = 8) -> list:
    """Per image its base scores over `classes` from one detector run, or the Exception its prediction raised.

    Args:
        plan: the run, whose labels are among `classes`; None when the detector knows none of them (all scores 0).
    """
    if plan is None:
        return [np.zeros(len(classes)) for _ in arrays]
    index = {label: j for j, label in enumerate(classes)}
    found = run_plans([plan], arrays, imgsz, batch)
    return [d if isinstance(d, Exception) else base_scores([[(index[lb], det.score) for lb, det in d]], len(index))[0]
            for d in found]


def base_logits(scores: np.ndarray, multi: bool) -> np.ndarray:
    """Base scores as a head's prior logits: sigmoid inputs for multi choice, softmax inputs for single choice
    (softmax of log-scores: the detected classes share the probability in proportion to their confidence)."""
    s = np.clip(np.asarray(scores, dtype=np.float64), FLOOR, 1.0 - FLOOR)
    return np.log(s / (1.0 - s)) if multi else np.log(s)


def detected(scores: np.ndarray) -> np.ndarray:
    """Per image, whether the base model found any class of the control (else it has no prediction)."""
    return (np.asarray(scores) > 0).any(axis=1)
