"""Learning from annotated texts, and deciding whether the result may replace the served model.

What is learned (`ner.model.NerModel`): a relabeler of spaCy's entities (`ner.relabel`) and a BIO tagger whose spans
fill in where no relabeled entity is. As in asr's adaptation: a candidate learns from a training split; on the
held-out split (a fixed share of the texts, chosen by a hash of their keys so a retrain holds out the same ones)
its span F1 on the project's labels is compared with the served model's (spaCy's mapping before any training);
the candidate is then learned again from every text, and published only when it was not worse. Per label, the
held-out texts also choose between both parts, the relabeler alone and spaCy's fixed mapping.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import pipeline
from .features import N_SHAPE, tagger_features, tagger_weights, token_features
from .model import Measure, NerModel
from .relabel import Relabeler, feature_weights, span_features, targets
from .spans import Span, bio_tags, check_spans, span_f1
from .tagger import DEFAULT_C, Tagger

MIN_EXAMPLES = 8  # annotated texts before a tagger is trained (2 held out, 6 to learn from)
HOLDOUT = 0.25


class TrainingError(ValueError):
    """Nothing to learn from: too few annotated texts, or no span of a project label."""


@dataclass
class Sample:
    """An annotated text: the spans an annotator marked (none is an answer too), `key` identifies it."""

    text: str
    spans: list[Span] = field(default_factory=list)
    key: str = ""


def held_out(samples: Sequence[Sample], fraction: float = HOLDOUT) -> set[int]:
    """Indices of the held-out samples: at least 2, chosen by the hash of their keys (stable across retrains)."""
    n = max(2, round(len(samples) * fraction))
    order = sorted(range(len(samples)), key=lambda i: hashlib.sha256(samples[i].key.encode()).hexdigest())
    return set(order[:n])


def fit_tagger(features: Sequence[np.ndarray], analyses: Sequence[pipeline.Analysis], samples: Sequence[Sample],
               type_to_label: Mapping[str, str], labels: Sequence[str], c: float = DEFAULT_C) -> Tagger:
    """A tagger learned from `samples` (their base features and spaCy analyses) for the project's `labels`."""
    types = pipeline.entity_types()
    full = [tagger_features(f, a, type_to_label, labels, types) for f, a in zip(features, analyses)]
    dim = features[0].shape[1] - 2 * len(types) - N_SHAPE
    tagger = Tagger.fit(full, [bio_tags(a.tokens, s.spans) for a, s in zip(analyses, samples)], c=c,
                        weight=tagger_weights(dim, len(labels), len(types)))
    tagger.feature_labels = list(labels)
    return tagger


def fit_relabeler(features: Sequence[np.ndarray], analyses: Sequence[pipeline.Analysis],
                  samples: Sequence[Sample], type_to_label: Mapping[str, str],
                  labels: Sequence[str]) -> Relabeler | None:
    """A relabeler of spaCy's entities learned from `samples`; None when their entities fall in one class."""
    types = pipeline.entity_types()
    x = [span_features(f, a, type_to_label, labels, types) for f, a in zip(features, analyses)]
    y = [targets(a, s.spans) for a, s in zip(analyses, samples)]
    if len({k for doc in y for k in doc}) < 2:
        return None
    dim = features[0].shape[1] - 2 * len(types) - N_SHAPE
    return Relabeler.fit(x, y, labels, feature_weights(dim, len(labels), len(types)))


def fit_model(features: Sequence[np.ndarray], analyses: Sequence[pipeline.Analysis], samples: Sequence[Sample],
              type_to_label: Mapping[str, str], labels: Sequence[str], c: float = DEFAULT_C) -> NerModel:
    """The tagger and the relabeler learned from `samples`."""
    return NerModel(fit_tagger(features, analyses, samples, type_to_label, labels, c),
                    fit_relabeler(features, analyses, samples, type_to_label, labels))


def choose_per_label(candidate: NerModel, f1_of, labels: Sequence[str]) -> dict[str, str]:
    """Per label, what serves it best on the held-out texts: "both" (relabeled entities, then the tagger's spans),
    "relabeler" (relabeled entities only) or "spacy" (the fixed mapping); a tie keeps the more learned one.
    Sets the parts' `serve_labels` accordingly."""
    tagger, relabeler = candidate.tagger, candidate.relabeler
    scores = {"both": span_f1(*f1_of(candidate, per_label=True), labels)[1]}
    tagger.serve_labels = []
    scores["relabeler"] = span_f1(*f1_of(candidate, per_label=True), labels)[1]
    if relabeler is not None:
        relabeler.serve_labels = []
    scores["spacy"] = span_f1(*f1_of(candidate, per_label=True), labels)[1]
    choice = {}
    for label in labels:
        f1 = {k: v[label].f1 if label in v else 0.0 for k, v in scores.items()}
        choice[label] = max(f1, key=lambda k: f1[k])  # dicts keep their order: "both" wins a tie
        if choice[label] == "relabeler" and (relabeler is None or label not in relabeler.classes):
            choice[label] = "spacy"  # what served it without the tagger was spaCy's fixed mapping
    serve(candidate, choice)
    return choice


def serve(model: NerModel, choice: dict[str, str]) -> None:
    """Sets which labels the model's tagger and relabeler serve after `choose_per_label`'s choice."""
    model.tagger.serve_labels = [lb for lb, k in choice.items() if k == "both"]
    if model.relabeler is not None:
        model.relabeler.serve_labels = [lb for lb, k in choice.items() if k in ("both", "relabeler")]


def train_tagger(samples: Sequence[Sample], labels: Sequence[str], type_to_label: Mapping[str, str],
                 served: NerModel | None, encoder, measure: Measure, c: float = DEFAULT_C,
                 holdout: float = HOLDOUT, analyses: Sequence[pipeline.Analysis] | None = None,
                 features: Sequence[np.ndarray] | None = None) -> tuple[NerModel, dict, bool, str]:
    """Learn a relabeler and a tagger for the project's `labels` and decide whether to publish them.

    Per label, the held-out texts choose what serves it (`choose_per_label`: relabeled entities and the tagger's
    spans, relabeled entities alone, or spaCy's fixed mapping); then the candidate as a whole must not be worse
    than the served model.

    Args:
        samples: annotated texts; spans of labels not in `labels` are ignored.
        served: the model served now (None: spaCy's mapping alone).
        encoder: the MiniLM `text_cls.encoder.Encoder` for the token features.
        analyses, features: the samples' spaCy analyses and base features when already computed (the bench).

    Returns:
        (model, metrics, publish, reason): publish is False when held-out span F1 would get worse.

    Raises:
        TrainingError: fewer than MIN_EXAMPLES texts, or no span with a project label.
    """
    wanted = set(labels)
    samples = [Sample(s.text, [sp for sp in s.spans if sp.label in wanted], s.key) for s in samples]
    for s in samples:
        check_spans(s.text, s.spans)
    if len(samples) < MIN_EXAMPLES:
        raise TrainingError(f"{len(samples)} annotated texts; a tagger needs at least {MIN_EXAMPLES}")
    if not any(s.spans for s in samples):
        raise TrainingError(f"no annotated span has one of the project's labels ({', '.join(labels)})")
    texts = [s.text for s in samples]
    analyses = analyses if analyses is not None else pipeline.analyse(texts)
    features = features if features is not None else token_features(encoder, texts, analyses)
    held = held_out(samples, holdout)
    train = [i for i in range(len(samples)) if i not in held]
    test = sorted(held)
    gold = [samples[i].spans for i in test]

    def f1_of(model: NerModel, per_label: bool = False):
        pred = model.predict([analyses[i] for i in test], [features[i] for i in test], type_to_label, labels,
                             measure)
        if per_label:
            return gold, [p.spans for p in pred]
        return span_f1(gold, [p.spans for p in pred], labels)[0].f1

    served = served or NerModel()
    f1_base = f1_of(NerModel())
    f1_before = f1_of(served) if served.learned else f1_base
    f1_after, choice = None, {}
    if any(samples[i].spans for i in train):
        candidate = fit_model([features[i] for i in train], [analyses[i] for i in train],
                              [samples[i] for i in train], type_to_label, labels, c)
        choice = choose_per_label(candidate, f1_of, labels)
        f1_after = f1_of(candidate)
    final = fit_model(features, analyses, samples, type_to_label, labels, c)
    if choice:
        serve(final, choice)
    metrics = {"span_f1_base": round(f1_base, 4), "span_f1_before": round(f1_before, 4),
               "span_f1_after": None if f1_after is None else round(f1_after, 4),
               "learned_labels": final.learned_labels, "served_by": choice,
               "spacy_kept_for": [lb for lb, k in choice.items() if k == "spacy"],
               "n_train": len(train), "n_heldout": len(test),
               "n_spans": sum(len(s.spans) for s in samples)}
    if f1_after is None:
        return final, metrics, False, "the training split holds no span: nothing to compare on held-out texts"
    if f1_after < f1_before:
        return final, metrics, False, (f"held-out span F1 would get worse: {f1_after:.3f} against "
                                       f"{f1_before:.3f} for the served model")
    return final, metrics, True, ""
