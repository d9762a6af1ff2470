"""The simulated annotator of the benches: how many seconds labelling a task takes from scratch and from the
backend's pre-annotation, replayed against a labelled data set.

One function per modality, each `(prediction, truth, ...) -> Effort`. The per-action times and their sources live
with the task package that also uses them in the product (boxes: `detection.effort.BoxCosts`, used there to learn a
project's score threshold); this module only replays. Boxes are modelled; choices (choosing against confirming),
transcripts (typing against correcting word edits) and masks (clicks against tracing a polygon) are not yet: add
their function here and to `MODALITIES`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from detection.effort import BOX_COSTS, BoxCosts, scratch_seconds
from detection.threshold import Truth, outcome_at
from detection.types import Detection


@dataclass(frozen=True)
class Effort:
    """Seconds to label one task (or a set of tasks, summed) with and without the pre-annotation."""

    assisted: float
    scratch: float

    @property
    def saved(self) -> float:
        """Fraction of the scratch time saved; 0 when there was nothing to label (and nothing was saved)."""
        return 1.0 - self.assisted / self.scratch if self.scratch > 0 else 0.0

    def __add__(self, other: Effort) -> Effort:
        return Effort(self.assisted + other.assisted, self.scratch + other.scratch)


def boxes(detections: Sequence[Detection], truths: Sequence[Truth], threshold: float,
          costs: BoxCosts = BOX_COSTS) -> Effort:
    """One image: its detections scored >= threshold are shown; the annotator keeps, fixes or deletes each and
    draws what is missing (`detection.effort.match_boxes`), against drawing every true box."""
    outcome = outcome_at(detections, truths, threshold)
    return Effort(outcome.seconds(costs), scratch_seconds(len(truths), costs))


def total(efforts: Sequence[Effort]) -> Effort:
    """Summed over tasks: the saving of a data set is that of its summed times, not the mean of per-task savings
    (an image with one object must not weigh as much as one with twenty)."""
    out = Effort(0.0, 0.0)
    for e in efforts:
        out = out + e
    return out


MODALITIES = {"boxes": boxes}
