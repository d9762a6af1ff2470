"""How well lines were read: character error rate (jiwer) over matched lines, and which predicted outline is which
true line (polygon IoU, shapely)."""
from __future__ import annotations

from collections.abc import Sequence

import jiwer
import numpy as np
from shapely.geometry import Polygon

MIN_IOU = 0.3  # a predicted line that covers less of a true one is another line (or a fragment)


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus character error rate (case and punctuation count: they are part of what is read); pairs with an
    empty reference are skipped.

    Raises:
        ValueError: no pair with a non-empty reference.
    """
    pairs = [(r.strip(), h.strip()) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        raise ValueError("character error rate needs at least one non-empty reference")
    return float(jiwer.cer([r for r, _ in pairs], [h for _, h in pairs]))


def _polygon(points: np.ndarray) -> Polygon:
    poly = Polygon(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    return poly if poly.is_valid else poly.buffer(0)  # a self-crossing outline drawn by hand


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two outlines in pixels (0 when either has no area)."""
    pa, pb = _polygon(a), _polygon(b)
    union = pa.union(pb).area
    return float(pa.intersection(pb).area / union) if union > 0 else 0.0


def match_lines(predicted: Sequence[np.ndarray], true: Sequence[np.ndarray],
                min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """(predicted index, true index) pairs, greedily by the highest IoU first, each line used once, IoU >= min_iou."""
    scores = [(iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(true)]
    used_p, used_t, pairs = set(), set(), []
    for s, i, j in sorted(scores, reverse=True):
        if s < min_iou:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((i, j))
    return sorted(pairs)
