"""spaCy's entities relabeled in context: each entity spaCy finds gets a project label or none, learned from the
annotated spans, with the fixed type mapping (`mapping.label_types`) as the prior it starts from.

spaCy's small pipeline finds most CoNLL-2003 entities with the right boundaries (71% of the dev entities are one of
its spans) but its types do not say what a project means: it calls sports teams by their city or country GPE where
CoNLL says ORG, so the fixed mapping scores 0.36 span F1 on ORG. A logistic regression over [the mapped label, the
spaCy type, its beam probability, the shape, spaCy's marginals, the MiniLM vectors of the span and of its
neighbours] learns the mapping in context; the mapped label weighs most under the L2 penalty, so with few
annotated sentences it stays close to the table. Saved as JSON + `.npz` (no pickle).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from .features import N_SHAPE
from .linear import LinearSoftmax, fit_softmax
from .pipeline import Analysis
from .spans import Span

NONE = "O"  # the class of a spaCy entity that is none of the project's entities
DEFAULT_C = 1.0
LEADING = re.compile(r"(?i)(?:the|a|an)\s+")
TRAILING = re.compile(r"(?:\s+(?:'s|'|[\d.,:/-]+))+$")
CONTEXT = 2  # tokens each side whose mean vector is the span's context
# Under the L2 penalty, per feature block (see `Relabeler.fit`'s weight), chosen on 600 CoNLL-2003 train sentences
# outside the bench's pool and dev: 0.654 span F1 from 100 annotated sentences, 0.640 from 25 (the fixed mapping:
# 0.622); flat within 0.005 for C 0.3-3, vector weight 0.3-0.6, prior weight 10-30. With the prior weighted 3 and
# the vectors 1 (and no trimmed candidates): 0.62 from 100, 0.45 from 25.
PRIOR_WEIGHT, TYPE_WEIGHT, VECTOR_WEIGHT = 10.0, 3.0, 0.3


def candidates(analysis: Analysis) -> list[tuple[int, Span]]:
    """(entity index, span) for each of spaCy's entities and its trimmed variants, with the entity's type and
    score: without a leading article and without a trailing possessive or number, where CoNLL-style annotation
    draws the boundary ("the Federal Reserve" -> "Federal Reserve", "Glamorgan 259" -> "Glamorgan"; 71% of the
    CoNLL-2003 dev entities are one of spaCy's spans, 77% one of these)."""
    out = []
    for k, e in enumerate(analysis.entities):
        piece = analysis.text[e.start:e.end]
        lead, trail = LEADING.match(piece), TRAILING.search(piece)
        first = lead.end() if lead else 0
        last = trail.start() if trail and trail.start() > first else len(piece)
        if not any(ch.isalpha() for ch in piece[first:last]):  # no word left once trimmed ("The 1996"): as is
            first, last = 0, len(piece)
        starts, ends = {e.start, e.start + first}, {e.end, e.start + last}
        out += [(k, Span(a, b, e.label, e.score)) for a in sorted(starts) for b in sorted(ends)
                if b > a and any(ch.isalnum() for ch in analysis.text[a:b])]
    return out


def _token_range(analysis: Analysis, span: Span) -> tuple[int, int]:
    inside = [i for i, (start, end) in enumerate(analysis.tokens) if start < span.end and span.start < end]
    return (inside[0], inside[-1] + 1) if inside else (0, 0)


def span_features(base: np.ndarray, analysis: Analysis, type_to_label: Mapping[str, str], labels: Sequence[str],
                  types: Sequence[str]) -> np.ndarray:
    """(len(candidates(analysis)), d) float32: what the relabeler reads about each candidate span.

    Args:
        base: the text's base token features (`features.token_features`: vectors, marginals, shape).
    """
    n_types, dim = len(types), base.shape[1] - 2 * len(types) - N_SHAPE
    width = n_features(dim, len(labels), n_types)
    column = {t: i for i, t in enumerate(types)}
    vectors, marginals, shapes = base[:, :dim], base[:, dim:dim + 2 * n_types], base[:, -N_SHAPE:]
    rows = []
    for k, span in candidates(analysis):
        i, j = _token_range(analysis, span)
        if j <= i:  # a span over no kept token (not made by `candidates`): all zeros
            rows.append(np.zeros(width, dtype=np.float32))
            continue
        source = analysis.entities[k]
        prior = np.zeros(len(labels) + 1)
        label = type_to_label.get(span.label)
        prior[list(labels).index(label) if label in labels else len(labels)] = 1.0
        kind = np.zeros(n_types)
        if span.label in column:
            kind[column[span.label]] = 1.0
        context = np.vstack([vectors[max(0, i - CONTEXT):i], vectors[j:j + CONTEXT]])
        trimmed = [span.start > source.start, span.end < source.end]
        rows.append(np.concatenate([prior, kind, [span.score, j - i, *trimmed], shapes[i],
                                    shapes[i:j].mean(axis=0), marginals[i:j].mean(axis=0),
                                    vectors[i:j].mean(axis=0), context.mean(axis=0) if len(context) else
                                    np.zeros(dim)]))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), width)


def n_features(dim: int, n_labels: int, n_types: int) -> int:
    return n_labels + 1 + n_types + 4 + 2 * N_SHAPE + 2 * n_types + 2 * dim


def feature_weights(dim: int, n_labels: int, n_types: int) -> np.ndarray:
    """How much each block of `span_features` counts under the L2 penalty: the mapped label most (the prior)."""
    return np.concatenate([np.full(n_labels + 1, PRIOR_WEIGHT), np.full(n_types, TYPE_WEIGHT),
                           np.ones(4 + 2 * N_SHAPE + 2 * n_types), np.full(2 * dim, VECTOR_WEIGHT)])


def targets(analysis: Analysis, gold: Sequence[Span]) -> list[str]:
    """Each candidate's class: the label of the annotated span with exactly its offsets, else NONE."""
    by_offsets = {(s.start, s.end): s.label for s in gold}
    return [by_offsets.get((s.start, s.end), NONE) for _, s in candidates(analysis)]


def decide(analysis: Analysis, probs: np.ndarray, classes: Sequence[str], served: set[str]) -> list[tuple[Span, int]]:
    """Per spaCy entity, its candidate whose most probable class is a served label, the likeliest such one:
    (the span with that label and probability, its row in `probs`)."""
    best: dict[int, tuple[float, Span, int]] = {}
    for row, ((k, span), p) in enumerate(zip(candidates(analysis), probs)):
        label = classes[int(p.argmax())]
        if label in served and (k not in best or p.max() > best[k][0]):
            best[k] = (float(p.max()), Span(span.start, span.end, label, float(p.max())), row)
    return [(span, row) for _, span, row in sorted(best.values(), key=lambda b: b[1].start)]


class Relabeler(LinearSoftmax):
    """A standardiser and a multinomial logistic regression from `span_features` to a label or NONE."""

    CONFIG_FILE, ARRAYS_FILE, CLASSES_KEY = "relabeler.json", "relabeler.npz", "classes"

    @property
    def labels(self) -> list[str]:
        """The labels it gives (those it saw in training) and is used for."""
        given = [c for c in self.classes if c != NONE]
        return given if self.serve_labels is None else [lb for lb in given if lb in self.serve_labels]

    @classmethod
    def fit(cls, features: Sequence[np.ndarray], classes: Sequence[Sequence[str]], feature_labels: Sequence[str],
            weight: np.ndarray, c: float = DEFAULT_C) -> Relabeler:
        """Fit on each text's entity features and classes.

        Raises:
            ValueError: fewer than two classes among the entities (nothing to tell apart).
        """
        x = np.vstack([f for f in features if len(f)]).astype(np.float64) if any(len(f) for f in features) \
            else np.zeros((0, len(weight)))
        y = np.array([k for doc in classes for k in doc])
        if len(x) != len(y):
            raise ValueError(f"{len(x)} entity features but {len(y)} classes")
        if len(set(y)) < 2:
            raise ValueError("spaCy's entities in the annotated texts fall in fewer than two classes")
        return cls(*fit_softmax(x, y, c, weight), feature_labels)
