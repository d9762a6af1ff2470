"""Agreement between annotators of one task, in [0, 1], per pair of annotations averaged over pairs.

Per control (from_name): choices and taxonomy must match exactly; boxes and polygons are matched by IoU >= 0.5
with the same label and scored as F1 (polygons by their bounding boxes); text spans by exact-match span F1
(start, end and label); text (transcripts) by
difflib's similarity ratio of the normalized text; anything else by equality.
"""
from __future__ import annotations

import difflib
import itertools
import json
from typing import Any

IOU_MATCH = 0.5


def _box(region: dict) -> tuple[float, float, float, float] | None:
    v = region.get("value") or {}
    if "points" in v and v["points"]:
        xs, ys = [p[0] for p in v["points"]], [p[1] for p in v["points"]]
        return min(xs), min(ys), max(xs), max(ys)
    if {"x", "y", "width", "height"} <= set(v):
        return v["x"], v["y"], v["x"] + v["width"], v["y"] + v["height"]
    return None


def _iou(a: tuple, b: tuple) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _label(region: dict) -> str:
    v = region.get("value") or {}
    for key in ("rectanglelabels", "polygonlabels", "labels", "brushlabels", "keypointlabels"):
        if v.get(key):
            return json.dumps(sorted(v[key]))
    return ""


def _regions_f1(a: list[dict], b: list[dict]) -> float:
    if not a and not b:
        return 1.0
    used: set[int] = set()
    matches = 0
    for ra in a:
        box_a = _box(ra)
        best, best_j = 0.0, None
        for j, rb in enumerate(b):
            box_b = _box(rb)
            if j in used or box_a is None or box_b is None or _label(ra) != _label(rb):
                continue
            iou = _iou(box_a, box_b)
            if iou > best:
                best, best_j = iou, j
        if best_j is not None and best >= IOU_MATCH:
            used.add(best_j)
            matches += 1
    return 2 * matches / (len(a) + len(b))


def _text(regions: list[dict]) -> str:
    parts = [t for r in regions for t in ((r.get("value") or {}).get("text") or [])]
    return " ".join(" ".join(parts).lower().split())


def _span_keys(regions: list[dict]) -> set[tuple[int, int, str]] | None:
    """(start, end, label) of every text span, or None when a region has no character offsets (HyperText)."""
    keys = set()
    for r in regions:
        v = r.get("value") or {}
        if not (isinstance(v.get("start"), int) and isinstance(v.get("end"), int)):
            return None
        keys |= {(v["start"], v["end"], str(label)) for label in v.get("labels") or []}
    return keys


def _spans_f1(a: list[dict], b: list[dict]) -> float | None:
    """Exact-match span F1 (start, end and label agree), as CoNLL scores entities."""
    ka, kb = _span_keys(a), _span_keys(b)
    if ka is None or kb is None:
        return None
    return 2 * len(ka & kb) / (len(ka) + len(kb)) if ka or kb else 1.0


def _control_agreement(kind: str, a: list[dict], b: list[dict]) -> float:
    if kind in ("rectanglelabels", "polygonlabels", "rectangle", "polygon"):
        return _regions_f1(a, b)
    if kind == "labels" and (f1 := _spans_f1(a, b)) is not None:
        return f1
    if kind == "textarea":
        return difflib.SequenceMatcher(None, _text(a), _text(b)).ratio()

    def values(regions: list[dict]) -> list[str]:
        return sorted(json.dumps(r.get("value"), sort_keys=True) for r in regions)

    return float(values(a) == values(b))


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
    return sum(_control_agreement(kinds[n], by_a.get(n, []), by_b.get(n, [])) for n in names) / len(names)


def task_agreement(annotations: list[dict[str, Any]]) -> float | None:
    """Mean pairwise agreement of a task's submitted annotations; None with fewer than two."""
    results = [a.get("result") or [] for a in annotations]
    if len(results) < 2:
        return None
    pairs = list(itertools.combinations(results, 2))
    return sum(pair_agreement(x, y) for x, y in pairs) / len(pairs)
