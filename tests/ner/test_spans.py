"""Spans, span F1, BIO tags and CoNLL files: offsets are code points, as Label Studio stores them."""
from __future__ import annotations

import pytest

from ner import conll
from ner.spans import Span, bio_tags, check_spans, non_overlapping, span_f1, spans_from_tags


def test_span_f1_is_exact_match_micro_and_per_label():
    gold = [[Span(0, 5, "PER"), Span(10, 15, "LOC")], [Span(0, 3, "ORG")]]
    pred = [[Span(0, 5, "PER"), Span(10, 14, "LOC")], [Span(0, 3, "LOC")]]
    micro, per = span_f1(gold, pred)
    assert (micro.tp, micro.n_gold, micro.n_pred) == (1, 3, 3)
    assert micro.f1 == pytest.approx(1 / 3)
    assert per["PER"].f1 == 1.0 and per["LOC"].f1 == 0.0 and per["ORG"].recall == 0.0
    assert span_f1(gold, pred, ["PER"])[0].f1 == 1.0
    assert span_f1([[]], [[]])[0].f1 == 1.0
    with pytest.raises(ValueError):
        span_f1(gold, pred[:1])


def test_bio_round_trip_and_lenient_reading():
    tokens = [(0, 3), (4, 9), (10, 15), (16, 20)]
    spans = [Span(4, 15, "PER")]
    tags = bio_tags(tokens, spans)
    assert tags == ["O", "B-PER", "I-PER", "O"]
    assert spans_from_tags(tokens, tags, [0.9, 0.8, 0.6, 0.99]) == [Span(4, 15, "PER", 0.6)]
    # an I- that does not continue its label starts a span; two labels next to each other stay apart
    assert spans_from_tags(tokens, ["I-LOC", "I-PER", "B-PER", "I-PER"]) == [
        Span(0, 3, "LOC"), Span(4, 9, "PER"), Span(10, 20, "PER")]
    # a span cut inside a token still tags the token
    assert bio_tags(tokens, [Span(5, 7, "ORG")]) == ["O", "B-ORG", "O", "O"]


def test_overlaps_keep_the_first_and_bad_offsets_are_refused():
    assert non_overlapping([Span(0, 5, "A"), Span(3, 8, "B"), Span(8, 9, "C")]) == [Span(0, 5, "A"), Span(8, 9, "C")]
    check_spans("hello", [Span(0, 5, "A")])
    for bad in (Span(0, 6, "A"), Span(3, 3, "A"), Span(-1, 2, "A")):
        with pytest.raises(ValueError):
            check_spans("hello", [bad])


def test_conll_reader_iob1_and_iob2(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\n"
                    "call NN I-NP O\n\nPeter NNP B-PER\nBlackburn NNP I-PER\nvisited VBD O\nNew NNP B-LOC\n"
                    "York NNP I-LOC\n")
    sents = conll.read(path)
    assert [t for t, _ in sents] == ["EU rejects German call", "Peter Blackburn visited New York"]
    text, spans = sents[1]
    assert [(text[s.start:s.end], s.label) for s in spans] == [("Peter Blackburn", "PER"), ("New York", "LOC")]
    assert [(sents[0][0][s.start:s.end], s.label) for s in sents[0][1]] == [("EU", "ORG"), ("German", "MISC")]
    assert len(conll.read(path, limit=1)) == 1


def test_bio_lines_keep_unicode_words_and_split_at_span_edges():
    text = "Dr. Müller 😀 met Apple's CEO in São Paulo.\r\n"
    spans = [Span(4, 10, "PER"), Span(17, 22, "ORG"), Span(32, 41, "LOC")]
    assert text[32:41] == "São Paulo"
    lines = list(conll.bio_lines(text, spans))
    assert "Müller B-PER" in lines and "Apple B-ORG" in lines and "'s O" in lines
    assert lines[lines.index("São B-LOC") + 1] == "Paulo I-LOC"
    assert "😀 O" in lines and lines[-1] == ". O"
