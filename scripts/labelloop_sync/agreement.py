"""Agreement between annotators of one task, in [0, 1], per pair of annotations averaged over pairs; never by
equality of the stored JSON, which differs for the same answer drawn twice.

Per control (from_name), by what its results hold:
- boxes, polygons, brush masks (also `<Labels>` on image regions): detection F1 at IoU >= 0.5, regions paired by
  the Hungarian method (`agreement_regions.py`);
- keypoints: instances paired by OKS, F1 weighted by OKS;
- a per-region TextArea (OCR): lines paired by IoU, F1 weighted by 1 - character error rate;
- any other TextArea (transcripts): 1 - word error rate (`agreement_text.py`);
- choices and taxonomy: set overlap (Jaccard), so [A, B] and [B, A] agree;
- text spans: exact-match span F1 (start, end and label);
- anything else (ratings, numbers): equal values.
"""
from __future__ import annotations

import itertools
from typing import Any

from .agreement_regions import keypoints_agreement, lines_agreement, regions_f1
from .agreement_text import chosen, equal_values, jaccard, spans_f1, transcript_similarity
from .export_regions import geometry_kind


def _region_ids(results: list[dict]) -> set:
    """Ids of the results that carry a shape."""
    return {r.get("id") for r in results if r.get("id") and geometry_kind(r.get("value") or {})}


def _per_region_text(regions: list[dict], full: list[dict]) -> set:
    """Ids of the TextArea results that belong to a region (their own shape, or one with the same id)."""
    shaped = _region_ids(full)
    return {r.get("id") for r in regions if r.get("id") and r.get("id") in shaped}


def _text(regions: list[dict]) -> str:
    return " ".join(t for r in regions for t in ((r.get("value") or {}).get("text") or []))


def _control_agreement(kind: str, a: list[dict], b: list[dict], full_a: list[dict], full_b: list[dict]) -> float:
    if kind in ("choices", "taxonomy"):
        return jaccard(chosen(a), chosen(b))
    if kind in ("keypointlabels", "keypoint"):
        return keypoints_agreement(full_a, full_b)
    if kind == "textarea":
        ids_a, ids_b = _per_region_text(a, full_a), _per_region_text(b, full_b)
        if ids_a or ids_b:
            return lines_agreement(full_a, full_b, ids_a, ids_b)
        return transcript_similarity(_text(a), _text(b))
    if kind == "labels" and (f1 := spans_f1(a, b)) is not None:
        return f1
    if any(geometry_kind(r.get("value") or {}) for r in a + b):
        return regions_f1(a, b)
    return equal_values(a, b)


def pair_agreement(a: list[dict], b: list[dict]) -> float:
    """Agreement of two annotations' results, averaged over the controls either of them used."""
    by_a: dict[str, list[dict]] = {}
    by_b: dict[str, list[dict]] = {}
    kinds: dict[str, str] = {}
    for regions, target in ((a, by_a), (b, by_b)):
        for r in regions:
            name = r.get("from_name", "")
            target.setdefault(name, []).append(r)
            kinds[name] = str(r.get("type", "")).lower()
    names = set(by_a) | set(by_b)
    if not names:
        return 1.0
    return sum(_control_agreement(kinds[n], by_a.get(n, []), by_b.get(n, []), a, b) for n in names) / len(names)


def task_agreement(annotations: list[dict[str, Any]]) -> float | None:
    """Mean pairwise agreement of a task's submitted annotations; None with fewer than two."""
    results = [a.get("result") or [] for a in annotations]
    if len(results) < 2:
        return None
    pairs = list(itertools.combinations(results, 2))
    return sum(pair_agreement(x, y) for x, y in pairs) / len(pairs)
