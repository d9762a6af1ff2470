"""The relabeler of spaCy's entities and the tagger's BIO-constrained decoding: trimmed candidates, the fixed
mapping as the prior, a type learned in context with the real spaCy pipeline and MiniLM, saving without pickle."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import selection
from ner import pipeline
from ner.features import encoder as load_encoder
from ner.features import token_features
from ner.mapping import label_types
from ner.model import NerModel
from ner.pipeline import Analysis
from ner.relabel import NONE, Relabeler, candidates, decide, targets
from ner.spans import Span
from ner.tagger import viterbi
from ner.train import Sample, fit_relabeler

MEASURE = selection.get_measure("least_confidence")
LABELS = ["PER", "ORG", "LOC", "MISC"]


def _analysis(text: str, entities: list[Span]) -> Analysis:
    tokens = [(i, i + len(w)) for i, w in _words(text)]
    return Analysis(tokens, entities, np.zeros((len(tokens), 0), dtype=np.float32), text)


def _words(text: str):
    start = 0
    for word in text.split(" "):
        yield start, word
        start += len(word) + 1


def test_candidates_trim_a_leading_article_and_a_trailing_possessive_or_number():
    text = "the Federal Reserve 's chief met Glamorgan 259 in Paris"
    fed, glam, paris = Span(0, 22, "ORG", 0.9), Span(33, 46, "GPE", 0.8), Span(50, 55, "GPE", 0.7)
    a = _analysis(text, [fed, glam, paris])
    got = {(k, text[s.start:s.end], s.label, s.score) for k, s in candidates(a)}
    assert got == {(0, "the Federal Reserve 's", "ORG", 0.9), (0, "Federal Reserve 's", "ORG", 0.9),
                   (0, "the Federal Reserve", "ORG", 0.9), (0, "Federal Reserve", "ORG", 0.9),
                   (1, "Glamorgan 259", "GPE", 0.8), (1, "Glamorgan", "GPE", 0.8), (2, "Paris", "GPE", 0.7)}
    gold = [Span(4, 19, "ORG"), Span(50, 55, "LOC")]
    classes = dict(zip([(s.start, s.end) for _, s in candidates(a)], targets(a, gold)))
    assert classes[(4, 19)] == "ORG" and classes[(50, 55)] == "LOC" and classes[(0, 22)] == NONE
    # an article alone or a number alone is no candidate
    only = _analysis("The 1996", [Span(0, 8, "DATE")])
    assert [text_of(only, s) for _, s in candidates(only)] == ["The 1996"]


def text_of(a: Analysis, s: Span) -> str:
    return a.text[s.start:s.end]


def test_decide_keeps_per_entity_the_likeliest_candidate_with_a_served_label():
    text = "the Federal Reserve met"
    a = _analysis(text, [Span(0, 19, "ORG")])
    rows = [(k, s.start, s.end) for k, s in candidates(a)]
    assert rows == [(0, 0, 19), (0, 4, 19)]
    classes = [NONE, "ORG", "LOC"]
    probs = np.array([[0.2, 0.7, 0.1], [0.05, 0.9, 0.05]])
    assert decide(a, probs, classes, {"ORG", "LOC"}) == [(Span(4, 19, "ORG", 0.9), 1)]
    assert decide(a, probs, classes, {"LOC"}) == []  # ORG is not served: nothing
    assert decide(a, np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1]]), classes, {"ORG"}) == []  # both none


def test_viterbi_never_starts_a_span_with_i_nor_continues_another_label():
    tags = ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    # greedy: I-PER first, then I-LOC after B-PER; both are forbidden
    p = np.array([[0.30, 0.05, 0.05, 0.55, 0.05],
                  [0.05, 0.50, 0.40, 0.0, 0.05],
                  [0.05, 0.05, 0.60, 0.10, 0.20]])
    path = [tags[j] for j in viterbi(np.log(p + 1e-12), tags)]
    assert path[0] != "I-PER" and all(not (b.startswith("I-") and a[2:] != b[2:]) for a, b in zip(path, path[1:]))
    assert path == ["B-LOC", "I-LOC", "I-LOC"]
    assert viterbi(np.zeros((0, 5)), tags) == []


@pytest.fixture(scope="module")
def enc(weights_dir: Path):
    return load_encoder(weights_dir)


COUNTRIES = ["Germany", "France", "Italy", "Spain", "Brazil", "Japan", "Mexico", "Canada"]


def _team(country: str) -> str:
    return f"The football team of {country} won the match ."


def _trip(country: str) -> str:
    return f"He travelled to {country} in May ."


def test_a_type_is_learned_in_context_and_the_model_saves_without_pickle(enc, tmp_path):
    """A country's football team is an ORG, the country itself a LOC: spaCy calls both GPE (the fixed mapping's
    LOC); the relabeler learns the difference from the context."""
    texts = [make(c) for c in COUNTRIES[:6] for make in (_team, _trip)]
    analyses = pipeline.analyse(texts)
    feats = token_features(enc, texts, analyses)
    mapping = label_types(LABELS, {}, pipeline.entity_types())
    samples = []
    for text in texts:
        country = next(c for c in COUNTRIES if c in text)
        start = text.index(country)
        samples.append(Sample(text, [Span(start, start + len(country), "ORG" if "team" in text else "LOC")]))
    relabeler = fit_relabeler(feats, analyses, samples, mapping, LABELS)
    assert relabeler is not None and set(relabeler.labels) == {"ORG", "LOC"}
    NerModel(None, relabeler).save(tmp_path)
    assert not list(tmp_path.rglob("*.pkl"))
    loaded = NerModel.load(tmp_path)
    assert loaded.relabeler.classes == relabeler.classes and loaded.tagger is None
    test = [make(c) for c in COUNTRIES[6:] for make in (_team, _trip)]
    ta = pipeline.analyse(test)
    pred = loaded.predict(ta, token_features(enc, test, ta), mapping, LABELS, MEASURE)
    found = [{(t[s.start:s.end], s.label) for s in p.spans} for t, p in zip(test, pred)]
    assert found == [{("Mexico", "ORG")}, {("Mexico", "LOC")}, {("Canada", "ORG")}, {("Canada", "LOC")}], found
    # before training the fixed mapping calls all four LOC
    base = NerModel().predict(ta, None, mapping, LABELS, MEASURE)
    assert [{s.label for s in p.spans} for p in base] == [{"LOC"}] * 4
    # loading refuses arrays that do not match
    with np.load(tmp_path / "relabeler" / "relabeler.npz") as z:
        arrays = dict(z)
    np.savez(tmp_path / "relabeler" / "relabeler.npz", **{**arrays, "coef": arrays["coef"][:1]})
    with pytest.raises(ValueError, match="do not match"):
        Relabeler.load(tmp_path / "relabeler")
