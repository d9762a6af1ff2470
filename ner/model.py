"""What a version serves: spaCy's entities mapped onto the project's labels, and once annotators have submitted
spans, for the labels they used, spaCy's entities relabeled in context (`relabel.Relabeler`) and the spans of a
learned tagger where no relabeled entity is (the other labels keep spaCy's mapped spans).

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
from .relabel import Relabeler, decide, span_features
from .spans import OUTSIDE, Span, non_overlapping, spans_from_tags
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
    """spaCy's mapped entities, with a learned `relabeler` and `tagger` (None before training) for the labels
    they know."""

    def __init__(self, tagger: Tagger | None = None, relabeler: Relabeler | None = None):
        self.tagger = tagger
        self.relabeler = relabeler

    @property
    def learned(self) -> bool:
        """Whether anything was learned (then `predict` needs the token features)."""
        return self.tagger is not None or self.relabeler is not None

    @property
    def learned_labels(self) -> list[str]:
        tagged = self.tagger.labels if self.tagger is not None else []
        relabeled = self.relabeler.labels if self.relabeler is not None else []
        return sorted(set(tagged) | set(relabeled))

    def predict(self, analyses: Sequence[Analysis], features: Sequence[np.ndarray] | None,
                type_to_label: Mapping[str, str], labels: Sequence[str], measure: Measure) -> list[Prediction]:
        """Each text's spans and score.

        Args:
            analyses: spaCy's analysis of each text.
            features: each text's base token features (`features.token_features`); needed only when `learned`.
            type_to_label: spaCy type -> project label (`mapping.label_types`).
            labels: the project's labels: a learned label the project no longer has is not predicted.
        """
        if self.learned and features is None:
            raise ValueError("a learned model needs the token features")
        wanted = set(labels)
        learned = set(self.learned_labels) & wanted
        out = []
        for i, a in enumerate(analyses):
            f = features[i] if features is not None else None
            relabeled, confidences = self._relabeled(a, f, type_to_label, wanted, measure)
            tagged, conf = self._tagged(a, f, type_to_label, wanted, measure)
            confidences += conf
            spans = relabeled + [s for s in tagged if not any(s.overlaps(k) for k in relabeled)]
            base = [s for s in map_entities(a.entities, type_to_label) if s.label in wanted - learned]
            base = [s for s in base if not any(s.overlaps(k) for k in spans)]
            if base:
                confidences.append(measure(_two_way([s.score for s in base])))
            confidences.append(self._outside_confidence(a, base, type_to_label, learned, measure))
            spans = non_overlapping(spans + base)
            joined = np.concatenate([c for c in confidences if len(c)]) if any(len(c) for c in confidences) else None
            out.append(Prediction(spans, None if joined is None else float(joined.min())))
        return out

    def _relabeled(self, a: Analysis, features: np.ndarray | None, type_to_label: Mapping[str, str], wanted: set[str],
                   measure: Measure) -> tuple[list[Span], list[np.ndarray]]:
        """spaCy's entities the relabeler gives a label it serves, and its confidences."""
        if self.relabeler is None or not a.entities:
            return [], []
        r = self.relabeler
        probs = r.proba(span_features(features, a, type_to_label, r.feature_labels, entity_types()))
        conf = measure(probs)
        chosen = decide(a, probs, r.classes, set(r.labels) & wanted)
        return [Span(s.start, s.end, s.label, float(conf[row])) for s, row in chosen], [conf]

    def _tagged(self, a: Analysis, features: np.ndarray | None, type_to_label: Mapping[str, str], wanted: set[str],
                measure: Measure) -> tuple[list[Span], list[np.ndarray]]:
        """The tagger's spans for the labels it serves (BIO-constrained decoding), and its confidences."""
        if self.tagger is None or not len(a.tokens):
            return [], []
        probs = self.tagger.proba(tagger_features(features, a, type_to_label, self.tagger.feature_labels,
                                                  entity_types()))
        conf = measure(probs)
        served = set(self.tagger.labels) & wanted
        tags = [t if t[2:] in served else OUTSIDE for t in self.tagger.decode(probs)]
        return spans_from_tags(a.tokens, tags, conf), [conf]

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
        if self.relabeler is not None:
            self.relabeler.save(Path(directory) / "relabeler")

    @classmethod
    def load(cls, directory: str | Path) -> NerModel:
        tagger, relabeler = Path(directory) / "tagger", Path(directory) / "relabeler"
        return cls(Tagger.load(tagger) if tagger.is_dir() else None,
                   Relabeler.load(relabeler) if relabeler.is_dir() else None)
