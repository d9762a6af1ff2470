"""Entity spans over a text and the measures on them.

Offsets are Python str indices (code points): an emoji counts one, "\\r\\n" two, as Label Studio stores them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OUTSIDE = "O"


@dataclass(frozen=True)
class Span:
    """`text[start:end]` is an entity of type `label`; `score` is how sure the model is, in [0, 1]."""

    start: int
    end: int
    label: str
    score: float = 1.0

    def key(self) -> tuple[int, int, str]:
        """What two spans must share to be the same entity (the score does not count)."""
        return (self.start, self.end, self.label)

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def check_spans(text: str, spans: Iterable[Span]) -> None:
    """Raise ValueError for a span outside `text` or empty."""
    for s in spans:
        if not (0 <= s.start < s.end <= len(text)):
            raise ValueError(f"span {s.start}..{s.end} is outside a text of {len(text)} characters")


def non_overlapping(spans: Iterable[Span]) -> list[Span]:
    """The spans sorted by start, dropping each one that overlaps an earlier-kept one (first come wins)."""
    kept: list[Span] = []
    for s in spans:
        if not any(s.overlaps(k) for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: (s.start, s.end))


@dataclass
class F1:
    """Exact-match span precision, recall and F1 (CoNLL's measure: start, end and label must all agree)."""

    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (self.n_pred + self.n_gold) if self.n_pred + self.n_gold else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {"f1": round(self.f1, 4), "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "n_gold": self.n_gold, "n_pred": self.n_pred}


def span_f1(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]],
            labels: Iterable[str] | None = None) -> tuple[F1, dict[str, F1]]:
    """Micro-averaged span F1 over documents, and one `F1` per label.

    Args:
        gold, pred: per document, its spans.
        labels: count only these labels (None: all).

    Returns:
        (micro, per_label); two empty sides score F1 = 1.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold documents but {len(pred)} predicted")
    wanted = set(labels) if labels is not None else None
    micro = F1()
    per: dict[str, F1] = {}
    for g_doc, p_doc in zip(gold, pred):
        g = {s.key() for s in g_doc if wanted is None or s.label in wanted}
        p = {s.key() for s in p_doc if wanted is None or s.label in wanted}
        for keys, field in ((g, "n_gold"), (p, "n_pred"), (g & p, "tp")):
            setattr(micro, field, getattr(micro, field) + len(keys))
            for k in keys:
                entry = per.setdefault(k[2], F1())
                setattr(entry, field, getattr(entry, field) + 1)
    return micro, per


def bio_tags(tokens: Sequence[tuple[int, int]], spans: Iterable[Span]) -> list[str]:
    """BIO tags of `tokens` ((start, end) offsets) for `spans`: a token belongs to the span it overlaps.

    A token an annotator cut in the middle still belongs to the entity; overlapping spans keep the first.
    """
    tags = [OUTSIDE] * len(tokens)
    for span in non_overlapping(spans):
        first = True
        for i, (start, end) in enumerate(tokens):
            if start < span.end and span.start < end and tags[i] == OUTSIDE:
                tags[i] = ("B-" if first else "I-") + span.label
                first = False
    return tags


def spans_from_tags(tokens: Sequence[tuple[int, int]], tags: Sequence[str],
                    confidence: Sequence[float] | None = None) -> list[Span]:
    """The spans BIO `tags` of `tokens` make, each scored by its least confident token.

    An I- tag that does not continue a span of its label starts one (the usual lenient reading).
    """
    spans: list[Span] = []
    current: list = []  # [start, end, label, score]
    for i, ((start, end), tag) in enumerate(zip(tokens, tags)):
        conf = 1.0 if confidence is None else float(confidence[i])
        kind, _, label = tag.partition("-")
        if tag == OUTSIDE or not label:
            if current:
                spans.append(Span(*current))
            current = []
            continue
        if kind == "I" and current and current[2] == label:
            current[1], current[3] = end, min(current[3], conf)
            continue
        if current:
            spans.append(Span(*current))
        current = [start, end, label, conf]
    if current:
        spans.append(Span(*current))
    return spans
