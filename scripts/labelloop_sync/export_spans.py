"""`export` of text spans (`<Labels>` on `<Text>`): CoNLL-2003 style BIO lines and spaCy JSONL (`text`, `spans`).

Offsets are those Label Studio stores: Python str indices into the task's text (code points). A span that does
not fit its text is left out and counted.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ner.conll import bio_lines
from ner.spans import Span


def text_keys(label_config: str) -> dict[str, str]:
    """`<Text name>` -> the task data key of its `$value`."""
    root = ET.fromstring(label_config)
    return {t.get("name", ""): t.get("value", "")[1:] for t in root.iter("Text")
            if t.get("value", "").startswith("$")}


def text_spans(item: Any, keys: dict[str, str]) -> tuple[list[tuple[str, list[Span]]], int]:
    """(text, spans) per `<Text>` of a task (in config order, those with a text) and how many spans did not fit."""
    by_object: dict[str, list[Span]] = {name: [] for name in keys}
    bad = 0
    for r in item.result:
        v = r.get("value") or {}
        if str(r.get("type", "")).lower() != "labels" or r.get("to_name") not in keys:
            continue
        text = item.data.get(keys[r["to_name"]])
        start, end = v.get("start"), v.get("end")
        if not (isinstance(text, str) and isinstance(start, int) and isinstance(end, int)
                and 0 <= start < end <= len(text)):
            bad += 1
            continue
        by_object[r["to_name"]] += [Span(start, end, str(label)) for label in v.get("labels") or []]
    out = [(item.data[keys[name]], sorted(spans, key=lambda s: (s.start, s.end)))
           for name, spans in by_object.items() if isinstance(item.data.get(keys[name]), str)]
    return out, bad


def write_conll(items: list, label_config: str, out: Path) -> tuple[list[Path], int]:
    """`ner.conll`: one `word tag` line per token (IOB2), a blank line after each text."""
    keys, bad = text_keys(label_config), 0
    path = out / "ner.conll"
    with open(path, "w", encoding="utf-8") as f:
        for item in items:
            texts, skipped = text_spans(item, keys)
            bad += skipped
            for text, spans in texts:
                f.write("".join(line + "\n" for line in bio_lines(text, spans)) + "\n")
    return [path], bad


def write_spacy_jsonl(items: list, label_config: str, out: Path) -> tuple[list[Path], int]:
    """`ner.jsonl`: {"text", "spans": [{"start", "end", "label"}], "ls_task_id"} per text, as spaCy and Prodigy
    read it."""
    keys, bad = text_keys(label_config), 0
    path = out / "ner.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for item in items:
            texts, skipped = text_spans(item, keys)
            bad += skipped
            for text, spans in texts:
                row = {"text": text, "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in spans],
                       "ls_task_id": item.id}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [path], bad
