"""Text spans in `sync.py export` (CoNLL BIO lines, spaCy JSONL) and in agreement (span F1), without a Label
Studio: the writers take the items `export.collect` makes."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from scripts.labelloop_sync.agreement import task_agreement
from scripts.labelloop_sync.export_spans import write_conll, write_spacy_jsonl

CONFIG = ('<View><Labels name="label" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>'
          '<Text name="text" value="$body"/></View>')
TEXT = "😀 Angela Merkel\r\nvisited São Paulo."


def _span(start: int, end: int, label: str, text: str = TEXT) -> dict:
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}


def _items() -> list:
    merkel, sao = TEXT.index("Angela Merkel"), TEXT.index("São Paulo")
    return [SimpleNamespace(id=7, data={"body": TEXT}, result=[_span(sao, sao + 9, "LOC"),
                                                                _span(merkel, merkel + 13, "PER"),
                                                                _span(40, 50, "PER")]),  # outside the text
            SimpleNamespace(id=8, data={"body": "Nothing here."}, result=[])]


def test_conll_lines_follow_the_spans(tmp_path):
    (path,), bad = write_conll(_items(), CONFIG, tmp_path)
    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    assert bad == 1 and len(blocks) == 2
    assert blocks[0].splitlines() == ["😀 O", "Angela B-PER", "Merkel I-PER", "visited O", "São B-LOC",
                                      "Paulo I-LOC", ". O"]
    assert blocks[1].splitlines() == ["Nothing O", "here O", ". O"]


def test_spacy_jsonl_keeps_code_point_offsets(tmp_path):
    (path,), bad = write_spacy_jsonl(_items(), CONFIG, tmp_path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert bad == 1 and [r["ls_task_id"] for r in rows] == [7, 8]
    assert [(TEXT[s["start"]:s["end"]], s["label"]) for s in rows[0]["spans"]] == [("Angela Merkel", "PER"),
                                                                                  ("São Paulo", "LOC")]
    assert rows[0]["spans"][0]["start"] == 2 and rows[1]["spans"] == []


def test_span_agreement_is_exact_match_f1():
    a = {"result": [_span(2, 15, "PER"), _span(25, 34, "LOC")]}
    assert task_agreement([a, a]) == 1.0
    assert task_agreement([a, {"result": [_span(2, 15, "PER")]}]) == pytest.approx(2 / 3)
    assert task_agreement([a, {"result": [_span(2, 14, "PER"), _span(25, 34, "PER")]}]) == 0.0
