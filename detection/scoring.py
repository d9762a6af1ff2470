"""A detection task's confidence: the F1 the model expects its own pre-annotation of an image to have.

Built from every candidate box down to a low floor, not only from the boxes shown. Each candidate's score p is read
as the chance that there is an object there. The boxes shown (p >= the control's threshold) are expected to hold
sum(p) right boxes and sum(1 - p) false ones; the candidates hidden below the threshold are expected to hold
sum(p) objects the annotator will have to draw. Hence a task's confidence is

    2 TP / (2 TP + FP + FN)    with TP, FP, FN those expectations (a ratio of expectations, not E[F1]).

Borderline candidates - shown ones near the threshold, hidden ones just below it - pull it down; confident boxes
and candidates far below the threshold barely move it. An image with nothing shown is scored by the chance that it
is really empty, prod(1 - p) over its candidates: an image where the model sees nothing at all above the floor is
confidently empty (1), not the most uncertain task of the project.

Measured on coco128 with yolov8n (bench/effort_bench.py): Spearman 0.78 with the per-image F1 of the
pre-annotation at threshold 0.1, against 0.68 for the mean score of the shown boxes served before (0.84 against
0.50 at threshold 0.5).

With class probabilities, a shown box is right only if its class is: TP counts p x q, where q is the chance that
the top class is right as the project's uncertainty measure (least confidence, margin, entropy: any function with
the `selection` signature `(n, k) probabilities -> (n,) confidences in [0, 1]`) sees the box's class row; a real
object under a wrong class is both a false box and a missed object. Without class probabilities the measures
cannot differ: every strategy gives the same score.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# candidates below this score are not looked at (YOLO leaves hundreds of near-zero boxes per image); the bench
# measured 0.01 a little better than 0.05 or 0.1
FLOOR = 0.01

Confidence = Callable[[np.ndarray], np.ndarray]


def class_certainty(class_probs: np.ndarray, confidence: Confidence | None = None) -> np.ndarray:
    """Per box, the chance that its top class is the right one.

    Args:
        class_probs: (n, k) probabilities over the classes the project asks for (YOLO's sigmoid class scores; rows
            need not sum to 1).
        confidence: an uncertainty measure, 1 for a certain row; its value c is put back on the probability scale
            as 1/k + (1 - 1/k) c (for least confidence that is exactly the top normalised probability). None: the
            top normalised probability.

    Returns:
        (n,) in [1/k, 1]; ones when there is a single class.
    """
    p = np.clip(np.nan_to_num(np.asarray(class_probs, dtype=np.float64)), 0.0, None)
    if p.ndim != 2:
        raise ValueError(f"class_probs must be a 2-D (n, k) array, got shape {p.shape}")
    n, k = p.shape
    if k < 2:
        return np.ones(n)
    total = p.sum(axis=1, keepdims=True)
    dist = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / k)
    if confidence is None:
        return dist.max(axis=1)
    c = np.clip(np.asarray(confidence(dist), dtype=np.float64).reshape(n), 0.0, 1.0)
    return 1.0 / k + (1.0 - 1.0 / k) * c


def image_confidence(scores: Sequence[float] | np.ndarray, threshold: float, class_probs: np.ndarray | None = None,
                     confidence: Confidence | None = None, floor: float = FLOOR) -> float:
    """An image's confidence in [0, 1]: the F1 its pre-annotation is expected to have.

    Args:
        scores: (n,) scores of all the image's candidates, predicted at a threshold at or below `floor`.
        threshold: the score from which candidates are shown to the annotator (the control's
            model_score_threshold).
        class_probs: (n, k) class probabilities per candidate, or None.
        confidence: the project's uncertainty measure over class probabilities (see `class_certainty`).
        floor: candidates scored below it are ignored.

    Returns:
        2 TP / (2 TP + FP + FN) of the expected counts when a box is shown; the chance that the image is empty when
        none is; 1.0 for an image with no candidate above the floor.
    """
    s = np.clip(np.nan_to_num(np.asarray(scores, dtype=np.float64).reshape(-1)), 0.0, 1.0)
    keep = s >= floor
    s = s[keep]
    shown = s >= threshold
    if not shown.any():
        return float(np.prod(1.0 - s))
    q = np.ones(len(s))
    if class_probs is not None:
        probs = np.asarray(class_probs, dtype=np.float64)
        if probs.ndim != 2 or len(probs) != len(keep):
            raise ValueError(f"class_probs must be ({len(keep)}, k), got shape {probs.shape}")
        q = class_certainty(probs[keep], confidence)
    right = s[shown] * q[shown]
    tp = right.sum()
    fp = (1.0 - right).sum()
    fn = s[~shown].sum() + (s[shown] - right).sum()  # hidden objects, and real ones shown under a wrong class
    return float(2.0 * tp / (2.0 * tp + fp + fn))
