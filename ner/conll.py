"""CoNLL-2003 files to texts and spans, and texts with spans to CoNLL-style BIO lines. No spaCy needed."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .spans import Span, bio_tags

DOCSTART = "-DOCSTART-"
# words and single punctuation marks, as CoNLL tokenises
TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]", re.UNICODE)


def read(path: str | Path, limit: int | None = None) -> list[tuple[str, list[Span]]]:
    """Sentences of a CoNLL-2003 file (word, POS, [chunk,] tag per line): the words joined by spaces, the spans.

    Tags may be IOB1 (I- at an entity's start) or IOB2; both give the same spans.
    """
    out: list[tuple[str, list[Span]]] = []
    words: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] == DOCSTART:
                if words:
                    out.append(_sentence(words))
                    words = []
                    if limit is not None and len(out) >= limit:
                        break
                continue
            words.append((parts[0], parts[-1]))
    if words and (limit is None or len(out) < limit):
        out.append(_sentence(words))
    return out


def _sentence(words: list[tuple[str, str]]) -> tuple[str, list[Span]]:
    text, spans, offset = [], [], 0
    current: list | None = None
    for word, tag in words:
        start, end = offset, offset + len(word)
        kind, _, label = tag.partition("-")
        if tag == "O" or not label:
            current = None
        elif kind == "I" and current is not None and current[2] == label:
            current[1] = end
        else:
            current = [start, end, label]
            spans.append(current)
        text.append(word)
        offset = end + 1
    return " ".join(text), [Span(s, e, lb) for s, e, lb in spans]


def tokenize(text: str) -> list[tuple[int, int]]:
    """(start, end) of the words and punctuation marks of `text`."""
    return [m.span() for m in TOKEN.finditer(text)]


def bio_lines(text: str, spans: Iterable[Span]) -> Iterator[str]:
    """`word tag` lines (IOB2) for one text; a span boundary inside a word splits the word there."""
    spans = list(spans)
    cuts = sorted({p for s in spans for p in (s.start, s.end)})
    tokens = []
    for start, end in tokenize(text):
        inner = [c for c in cuts if start < c < end]
        bounds = [start, *inner, end]
        tokens.extend(zip(bounds, bounds[1:]))
    for (start, end), tag in zip(tokens, bio_tags(tokens, spans)):
        yield f"{text[start:end]} {tag}"
