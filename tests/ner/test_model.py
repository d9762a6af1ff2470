"""The ner model with the real spaCy pipeline and MiniLM: exact offsets in unicode texts, a tagger learned from a
handful of texts, and the publish guard."""
from __future__ import annotations

from pathlib import Path

import pytest

import selection
from ner import pipeline
from ner.features import encoder as load_encoder
from ner.features import token_features
from ner.mapping import label_types
from ner.model import NerModel
from ner.spans import Span
from ner.train import MIN_EXAMPLES, Sample, TrainingError, held_out, train_tagger

MEASURE = selection.get_measure("least_confidence")
LABELS = ["Person", "Fruit"]


@pytest.fixture(scope="module")
def enc(weights_dir: Path):
    return load_encoder(weights_dir)


@pytest.fixture(scope="module")
def mapping():
    return label_types(LABELS, {}, pipeline.entity_types())


def _predict(model, texts, mapping, enc, labels=LABELS):
    analyses = pipeline.analyse(texts)
    feats = token_features(enc, texts, analyses) if model.tagger is not None else None
    return model.predict(analyses, feats, mapping, labels, MEASURE)


def test_spacy_spans_keep_exact_offsets_with_emoji_crlf_and_accents(mapping, enc):
    text = ("Angela Merkel 😀😀 met Emmanuel Macron.\r\n\r\nZoë 👩‍👩‍👧 said François Hollande arrived in "
            "Berlin with Barack Obama.\r\n")
    names = ["Angela Merkel", "Emmanuel Macron", "François Hollande", "Barack Obama"]
    found = _predict(NerModel(), [text], mapping, enc)[0]
    got = {(s.start, s.end): text[s.start:s.end] for s in found.spans}
    hits = [n for n in names if (text.index(n), text.index(n) + len(n)) in got]
    assert len(hits) >= 3, got  # the offsets are code points: the emoji and CRLF before a name do not shift it
    for s in found.spans:
        assert s.label == "Person" and 0 <= s.score <= 1 and text[s.start:s.end].strip() == text[s.start:s.end]
    assert 0 <= found.score <= min(s.score for s in found.spans)


def test_unmapped_labels_are_not_predicted_before_training_and_empty_texts_score_none(mapping, enc):
    found = _predict(NerModel(), ["I ate an apple in Paris with John Smith.", "", "  \r\n "], mapping, enc)
    assert {s.label for s in found[0].spans} == {"Person"}
    assert found[1].spans == [] and found[1].score is None and found[2].score is None


FRUITS = ["apple", "banana", "mango", "cherry", "peach", "plum", "pear", "lemon", "grape", "kiwi", "melon", "fig"]


def _fruit_samples(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        fruit = FRUITS[i % len(FRUITS)]
        text = f"Yesterday Mary Jones bought a {fruit} at the market 🍎."
        start = text.index(fruit)
        out.append(Sample(text, [Span(10, 20, "Person"), Span(start, start + len(fruit), "Fruit")], key=f"t{i}"))
    return out


def test_a_tagger_learns_a_label_spacy_does_not_know_and_the_rest_stays(mapping, enc, tmp_path):
    model, metrics, publish, reason = train_tagger(_fruit_samples(12), LABELS, mapping, None, enc, MEASURE)
    assert publish, reason
    assert metrics["span_f1_after"] >= metrics["span_f1_before"] and metrics["learned_labels"] == sorted(LABELS)
    model.save(tmp_path)
    loaded = NerModel.load(tmp_path)
    text = "Later 👩‍👩‍👧 Mary Jones bought a mango at the market."
    found = _predict(loaded, [text], mapping, enc)[0]
    assert ("mango", "Fruit") in {(text[s.start:s.end], s.label) for s in found.spans}
    # a project that dropped a label no longer gets it, even from a tagger that learned it
    assert all(s.label != "Fruit" for s in _predict(loaded, [text], mapping, enc, ["Person"])[0].spans)


def test_labels_without_annotations_keep_spacys_spans(mapping, enc):
    samples = [Sample(s.text, [sp for sp in s.spans if sp.label == "Fruit"], s.key) for s in _fruit_samples(10)]
    model = train_tagger(samples, LABELS, mapping, None, enc, MEASURE)[0]
    assert model.learned_labels == ["Fruit"]
    text = "Angela Merkel bought a plum at the market."
    found = {(text[s.start:s.end], s.label) for s in _predict(model, [text], mapping, enc)[0].spans}
    assert ("Angela Merkel", "Person") in found and ("plum", "Fruit") in found


def test_a_label_spacy_finds_better_on_held_out_texts_keeps_spacys_spans(mapping, enc):
    samples = _fruit_samples(12)
    held = held_out(samples)
    # the held-out texts are annotated right; the others mark the verb as the Person
    bad = [s if i in held else Sample(s.text, [Span(21, 27, "Person"), s.spans[1]], s.key)
           for i, s in enumerate(samples)]
    model, metrics, publish, reason = train_tagger(bad, LABELS, mapping, None, enc, MEASURE)
    assert publish, reason
    assert metrics["spacy_kept_for"] == ["Person"] and model.learned_labels == ["Fruit"]
    assert metrics["served_by"]["Person"] == "spacy"
    text = "Angela Merkel bought a plum at the market."
    found = {(text[s.start:s.end], s.label) for s in _predict(model, [text], mapping, enc)[0].spans}
    assert ("Angela Merkel", "Person") in found and ("bought", "Person") not in found


def test_the_guard_rejects_a_tagger_worse_than_the_served_model_on_held_out_texts(mapping, enc):
    samples = _fruit_samples(12)
    served = train_tagger(samples, LABELS, mapping, None, enc, MEASURE)[0]
    held = held_out(samples)
    # the held-out texts are annotated right; the others mark "market" as the fruit
    bad = [s if i in held else Sample(s.text, [s.spans[0], Span(s.text.index("market"), s.text.index("market") + 6,
                                                               "Fruit")], s.key) for i, s in enumerate(samples)]
    model, metrics, publish, reason = train_tagger(bad, LABELS, mapping, served, enc, MEASURE)
    assert not publish and "worse" in reason
    assert metrics["span_f1_after"] < metrics["span_f1_before"]


def test_too_few_texts_or_no_span_is_a_training_error(mapping, enc):
    with pytest.raises(TrainingError, match=str(MIN_EXAMPLES)):
        train_tagger(_fruit_samples(MIN_EXAMPLES - 1), LABELS, mapping, None, enc, MEASURE)
    with pytest.raises(TrainingError, match="no annotated span"):
        train_tagger([Sample(s.text, [], s.key) for s in _fruit_samples(10)], LABELS, mapping, None, enc, MEASURE)
    with pytest.raises(ValueError):
        train_tagger([Sample("short", [Span(0, 9, "Fruit")], "x")] * 10, LABELS, mapping, None, enc, MEASURE)
