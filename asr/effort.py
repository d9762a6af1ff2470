"""What a transcript costs an annotator: typing it from scratch against correcting the pre-annotation word by word.

A simple model with two per-word times (cited below) and one listening pass: the annotator hears the clip once
either way, then types every word of it, or fixes each word edit (substitution, deletion, insertion) that turns the
pre-annotation into the right transcript. Pure Python: the benches replay data sets through it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .metrics import normalize, word_edits


@dataclass(frozen=True)
class TranscriptCosts:
    """Seconds an annotator spends on a transcript. The one home of these constants.

    - listen 1.0 x the clip's duration: hearing it once, with or without a pre-annotation (reading along while
      listening). Replays are folded into the per-word times.
    - type_word 1.16 s: one word typed, from the mean typing speed of 51.6 words a minute over 168,000 people in
      Dhakal, Feit, Kristensson & Oulasvirta, "Observations on typing from 136 million keystrokes", CHI 2018. With
      the listening pass this gives ~3.9x real time for read speech at 2.5 words a second, the usual rule of thumb
      of ~4 hours of work per hour of clean audio.
    - edit_word 3.9 s: one word edit (find it, select, retype or delete). NOT measured directly: derived from the
      break-even that Gaur, Lasecki, Metze & Bigham report in "The effects of automatic speech recognition quality
      on human transcription latency", W4A 2016: correcting ASR output stops being faster than typing from
      scratch at about 30 % WER, so one edit costs type_word / 0.30.
    """

    listen: float = 1.0
    type_word: float = 1.16
    edit_word: float = 3.9

    def __post_init__(self) -> None:
        for name in ("listen", "type_word", "edit_word"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"TranscriptCosts.{name} must be non-negative, got {getattr(self, name)!r}")


TRANSCRIPT_COSTS = TranscriptCosts()


def scratch_seconds(reference: str, duration_s: float, costs: TranscriptCosts = TRANSCRIPT_COSTS) -> float:
    """Listening to the clip and typing every word of its transcript."""
    return costs.listen * max(duration_s, 0.0) + costs.type_word * len(normalize(reference).split())


def assisted_seconds(reference: str, hypothesis: str, duration_s: float,
                     costs: TranscriptCosts = TRANSCRIPT_COSTS) -> float:
    """Listening to the clip and fixing each word edit between the pre-annotation and the right transcript.

    An empty pre-annotation leaves nothing to correct: the annotator types it from scratch."""
    if not normalize(hypothesis):
        return scratch_seconds(reference, duration_s, costs)
    return costs.listen * max(duration_s, 0.0) + costs.edit_word * word_edits(reference, hypothesis)
