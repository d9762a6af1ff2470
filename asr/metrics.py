"""Word error rate with the normalisation transcripts are compared under (case and punctuation ignored)."""
from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer

_PUNCT = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def normalize(text: str) -> str:
    """Lower case, punctuation dropped (apostrophes inside words kept), whitespace collapsed."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate over normalised pairs; empty references are skipped (WER is undefined there)."""
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        raise ValueError("word error rate needs at least one non-empty reference")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def word_edits(reference: str, hypothesis: str) -> int:
    """Word substitutions, deletions and insertions that turn `hypothesis` into `reference` (both normalised)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return len(hyp.split())
    if not hyp:
        return len(ref.split())
    out = jiwer.process_words(ref, hyp)
    return int(out.substitutions + out.deletions + out.insertions)
