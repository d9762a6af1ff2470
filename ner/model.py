"""What a version serves: spaCy's entities mapped onto the project's labels, and once annotators have submitted
spans, a learned tagger for the labels they used (the other labels keep spaCy's mapped spans).

Confidence: every decision the model made about a text gets one, from a selection measure (`measure`, e.g.
`selection.least_confidence`) over its distribution — a learned token's tag probabilities, a spaCy span's beam
probability against its absence, a token outside spaCy's spans against the chance that a mapped entity covers it.
A span's score is its least confident token (beam probability for spaCy's); the text's score is its least
confident decision, spans and "no entity here" alike, so a text where something may have been missed ranks early.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import tagger_features
from .mapping import map_entities
from .pipeline import Analysis, entity_types
from .spans import Span, non_overlapping, spans_from_tags
from .tagger import Tagger

Measure = Callable[[np.ndarray], np.ndarray]  # (n, k) distributions -> (n,) confidences in [0, 1]


@dataclass
class Prediction:
    """One text's spans (project labels) and its confidence in [0, 1] (None for a text without tokens)."""

    spans: list[Span] = field(default_factory=list)
    score: float | None = None


def _two_way(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    return np.stack([p, 1.0 - p], axis=-1).reshape(-1, 2)


class NerModel:
    """spaCy's mapped entities, with a learned `tagger` (None before training) for the labels it knows."""

    def __init__(self, tagger: Tagger | None = None):
        self.tagger = tagger

    @property
    def learned_labels(self) -> list[str]:
        return self.tagger.labels if self.tagger is not None else []

    def predict(self, analyses: Sequence[Analysis], features: Sequence[np.ndarray] | None,
                type_to_label: Mapping[str, str], labels: Sequence[str], measure: Measure) -> list[Prediction]:
        """Each text's spans and score.

        Args:
            analyses: spaCy's analysis of each text.
            features: each text's base token features (`features.token_features`); needed only with a tagger.
            type_to_label: spaCy type -> project label (`mapping.label_types`).
            labels: the project's labels: a learned label the project no longer has is not predicted.
        """
        if self.tagger is not None and features is None:
            raise ValueError("a learned model needs the token features")
        wanted = set(labels)
        learned = set(self.learned_labels) & wanted
        types = entity_types()
        out = []
        for i, a in enumerate(analyses):
            spans, confidences = [], []
            if self.tagger is not None and len(a.tokens):
                probs = self.tagger.proba(tagger_features(features[i], a, type_to_label,
                                                          self.tagger.feature_labels, types))
                conf = measure(probs)
                tags = [self.tagger.tags[j] for j in probs.argmax(axis=1)]
                tags = [t if t[2:] in learned else "O" for t in tags]
                spans = spans_from_tags(a.tokens, tags, conf)
                confidences.append(conf)
            base = [s for s in map_entities(a.entities, type_to_label) if s.label in wanted - learned]
            base = [s for s in base if not any(s.overlaps(k) for k in spans)]
            if base:
                confidences.append(measure(_two_way([s.score for s in base])))
            confidences.append(self._outside_confidence(a, base, type_to_label, learned, measure))
            spans = non_overlapping(spans + base)
            joined = np.concatenate([c for c in confidences if len(c)]) if any(len(c) for c in confidences) else None
            out.append(Prediction(spans, None if joined is None else float(joined.min())))
        return out

    @staticmethod
    def _outside_confidence(a: Analysis, base: list[Span], type_to_label: Mapping[str, str], learned: set[str],
                            measure: Measure) -> np.ndarray:
        """How sure spaCy is that tokens outside its kept spans hold no entity of a label it serves."""
        types = [t for t, label in type_to_label.items() if label not in learned]
        if not types or not len(a.tokens):
            return np.zeros(0)
        order = {t: i for i, t in enumerate(entity_types())}
        cols = [2 * order[t] + k for t in types if t in order for k in (0, 1)]
        doubt = a.marginals[:, cols].sum(axis=1) if cols else np.zeros(len(a.tokens))
        inside = np.array([any(s.start < e and st < s.end for s in base) for st, e in a.tokens], dtype=bool)
        return measure(_two_way(doubt[~inside]))

    def save(self, directory: str | Path) -> None:
        if self.tagger is not None:
            self.tagger.save(Path(directory) / "tagger")

    @classmethod
    def load(cls, directory: str | Path) -> NerModel:
        path = Path(directory) / "tagger"
        return cls(Tagger.load(path) if path.is_dir() else None)
