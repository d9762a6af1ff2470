"""Agreement measures on what annotators typed or chose: transcripts by word error rate, OCR lines by character
error rate, choices by set overlap, text spans by span F1. Each is in [0, 1] and symmetric."""
from __future__ import annotations

import json

import jiwer

from asr.metrics import normalize, word_edits


def transcript_similarity(a: str, b: str) -> float:
    """1 - WER with the longer transcript as the reference (case and punctuation ignored, as asr scores)."""
    words = max(len(normalize(a).split()), len(normalize(b).split()))
    return 1.0 if not words else max(0.0, 1 - word_edits(a, b) / words)


def line_similarity(a: str, b: str) -> float:
    """1 - CER with the longer line as the reference (case and punctuation count: they are what is read)."""
    a, b = " ".join(a.split()), " ".join(b.split())
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    ref, hyp = (a, b) if len(a) >= len(b) else (b, a)
    return max(0.0, 1 - float(jiwer.cer(ref, hyp)))


def chosen(regions: list[dict]) -> set[str]:
    """The choices (taxonomy paths joined by " / ") of a control's results."""
    out = set()
    for r in regions:
        v = r.get("value") or {}
        out |= {str(c) for c in v.get("choices") or []}
        out |= {" / ".join(map(str, path)) if isinstance(path, list) else str(path) for path in v.get("taxonomy") or []}
    return out


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 1 for two empty sets."""
    return len(a & b) / len(a | b) if a or b else 1.0


def _span_keys(regions: list[dict]) -> set[tuple[int, int, str]] | None:
    """(start, end, label) of every text span, or None when a region has no character offsets (HyperText)."""
    keys = set()
    for r in regions:
        v = r.get("value") or {}
        if not (isinstance(v.get("start"), int) and isinstance(v.get("end"), int)):
            return None
        keys |= {(v["start"], v["end"], str(label)) for label in v.get("labels") or []}
    return keys


def spans_f1(a: list[dict], b: list[dict]) -> float | None:
    """Exact-match span F1 (start, end and label agree), as CoNLL scores entities; None without offsets."""
    ka, kb = _span_keys(a), _span_keys(b)
    if ka is None or kb is None:
        return None
    return 2 * len(ka & kb) / (len(ka) + len(kb)) if ka or kb else 1.0


def equal_values(a: list[dict], b: list[dict]) -> float:
    """1 when the values are the same (in any order), else 0: ratings, numbers, dates."""
    def values(regions: list[dict]) -> list[str]:
        return sorted(json.dumps(r.get("value"), sort_keys=True) for r in regions)

    return float(values(a) == values(b))
