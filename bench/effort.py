"""The simulated annotator of the benches: how many seconds labelling a task takes from scratch and from the
backend's pre-annotation, replayed against a labelled data set.

One function per modality, each `(prediction, truth, ...) -> Effort`. The per-action times and their sources live
with the task package that also uses them in the product (boxes: `detection.effort.BoxCosts`, used there to learn a
project's score threshold); this module only replays. Choices are bench-only (no product code learns from them
yet), so their times live here, in `ChoiceCosts`. Transcripts: `asr.effort.TranscriptCosts` (typing against
correcting word edits). Masks: `MaskCosts` here (bench-only like choices), tracing a polygon against checking,
redoing or deleting an automatic mask; the clicks of a smart tool are not simulated (no SAM weights to click with).
"""
from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields

import numpy as np

from asr.effort import TRANSCRIPT_COSTS, TranscriptCosts, assisted_seconds
from asr.effort import scratch_seconds as transcript_scratch_seconds
from detection.effort import BOX_COSTS, BoxCosts, match_by_iou, scratch_seconds
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


def _check_non_negative(costs: object) -> None:
    """Every field of a costs dataclass is a non-negative number (NaN is not)."""
    for f in fields(costs):
        value = getattr(costs, f.name)
        if not value >= 0.0:  # NaN fails this too
            raise ValueError(f"{type(costs).__name__}.{f.name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True)
class ChoiceCosts:
    """Seconds an annotator spends on a choice task (a text and a `<Choices>` control): the one home of these
    constants. The operators are those of the keystroke-level model; none of it was measured on labelling.

    - words_per_minute 238: silent reading of English non-fiction, Brysbaert, "How many words do we read per
      minute? A review and meta-analysis of reading rate", Journal of Memory and Language 109, 2019. Reading is the
      same with and without a pre-annotation: the annotator must read the text to judge the shown choice too.
    - decide 1.35 s: the mental preparation operator M of Card, Moran & Newell, "The keystroke-level model for user
      performance time with interactive systems", CACM 23(7), 1980. Charged once to settle on an answer from
      scratch and once to judge a shown choice (ASSUMPTION: verifying a shown class is one M, like choosing one).
    - point 1.1 s and press 0.2 s: pointing with the mouse (P) and a key or button press (K, average skilled
      typist) of the same paper. One P+K per choice clicked and one to submit.
    - bits 0.15 s per bit: the Hick-Hyman law's constant as Card, Moran & Newell, "The Psychology of
      Human-Computer Interaction", 1983, give it (150 ms/bit, range 0-157): finding one of k choices takes
      bits * log2(k + 1) more.
    - A wrong pre-annotation costs what choosing from scratch costs plus the judging M (ASSUMPTION: the annotator
      first weighs the shown choice, then chooses as without it; anchoring on a wrong choice may cost more).
    """

    words_per_minute: float = 238.0
    decide: float = 1.35
    point: float = 1.1
    press: float = 0.2
    bits: float = 0.15

    def __post_init__(self) -> None:
        _check_non_negative(self)
        if self.words_per_minute == 0:
            raise ValueError("ChoiceCosts.words_per_minute must be positive")

    def read(self, words: int) -> float:
        """Seconds to read a text of `words` words."""
        return 60.0 * max(int(words), 0) / self.words_per_minute

    def click(self) -> float:
        """Point at a choice or button and click it."""
        return self.point + self.press

    def search(self, n_choices: int) -> float:
        """Finding the right one among `n_choices` (Hick-Hyman)."""
        return self.bits * math.log2(max(int(n_choices), 1) + 1)


CHOICE_COSTS = ChoiceCosts()


def choices(predicted: Collection[str] | None, truth: Collection[str], words: int, n_choices: int,
            multi: bool = False, costs: ChoiceCosts = CHOICE_COSTS) -> Effort:
    """One text: the pre-annotated choices (None: nothing shown) against the choices it should end up with.

    From scratch: read, decide, find and click each true choice, submit. Pre-annotation right: read, judge it,
    submit. Wrong: read, judge it, then decide, find and click what changes (single choice: one click replaces
    the shown choice; multi choice: one toggle per choice shown wrongly or missing), submit.
    """
    truth = set(truth)
    base = costs.read(words) + costs.click()  # reading and the submit button, in every case
    scratch = base + costs.decide + costs.search(n_choices) + len(truth) * costs.click()
    if predicted is None:
        return Effort(scratch, scratch)
    predicted = set(predicted)
    if predicted == truth:
        return Effort(base + costs.decide, scratch)
    changes = len(predicted ^ truth) if multi else len(truth - predicted) or 1
    return Effort(base + 2 * costs.decide + costs.search(n_choices) + changes * costs.click(), scratch)


def transcripts(hypothesis: str, reference: str, duration_s: float,
                costs: TranscriptCosts = TRANSCRIPT_COSTS) -> Effort:
    """One clip: listening and fixing each word edit of the pre-annotated transcript, against listening and typing
    every word (`asr.effort`; an empty pre-annotation is typed from scratch)."""
    return Effort(assisted_seconds(reference, hypothesis, duration_s, costs),
                  transcript_scratch_seconds(reference, duration_s, costs))


@dataclass(frozen=True)
class MaskCosts:
    """Seconds an annotator spends per mask action, and the IoU a mask needs to be kept as it is.

    - trace 79.2 s: one object outlined with a polygon in COCO, "22 worker hours per 1,000 segmentations" (Lin et
      al., "Microsoft COCO: Common Objects in Context", ECCV 2014), the figure Papadopoulos et al. (ICCV 2017) cite.
    - verify 1.6 s: ASSUMPTION, a mask checked as fast as a box (Papadopoulos et al., CVPR 2016, boxes).
    - fix 79.2 s: a mask on the right object but not good enough (IoU below `keep_iou`, or the wrong class) is
      traced again, with no credit: the conservative choice, since no smart-tool clicks are simulated. The bench
      also reports `fix` 20 s (ASSUMPTION: a few clicks of a smart tool or vertex drags).
    - delete 1.0 s: as for boxes (assumed).
    - keep_iou 0.75: a mask at or above it, of the right class, is kept (ASSUMPTION; the bench varies it).
    """

    trace: float = 79.2
    verify: float = 1.6
    fix: float = 79.2
    delete: float = 1.0
    keep_iou: float = 0.75

    def __post_init__(self) -> None:
        _check_non_negative(self)


MASK_COSTS = MaskCosts()


def mask_iou(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) IoU of boolean masks of one image."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    fa = np.stack([np.asarray(m, bool).ravel() for m in a]).astype(np.float32)
    fb = np.stack([np.asarray(m, bool).ravel() for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)


def masks(pred: Sequence[tuple[str, float, np.ndarray]], truths: Sequence[tuple[str, np.ndarray]], threshold: float,
          costs: MaskCosts = MASK_COSTS) -> Effort:
    """One image: its automatic masks (class, score, mask) scored >= threshold are shown; each is kept (right class,
    IoU >= keep_iou: verified), fixed (on an object: `fix`), or deleted; objects no mask claimed are traced;
    against tracing every object."""
    iou = mask_iou([m for _, _, m in pred], [m for _, m in truths])
    return masks_by_iou([(c, s) for c, s, _ in pred], [c for c, _ in truths], iou, threshold, costs)


def masks_by_iou(pred: Sequence[tuple[str, float]], true_cls: Sequence[str], iou: np.ndarray, threshold: float,
                 costs: MaskCosts = MASK_COSTS) -> Effort:
    """`masks` from the (len(pred), len(true_cls)) IoU of the masks, computed once for every threshold."""
    shown = sorted((i for i, (_, score) in enumerate(pred) if score >= threshold), key=lambda i: -pred[i][1])
    target, correct = match_by_iou([pred[i][0] for i in shown], true_cls, np.asarray(iou)[shown].reshape(
        len(shown), len(true_cls)), costs.keep_iou, 0.1)
    matched, kept = int((target >= 0).sum()), int(correct.sum())
    seconds = (kept * costs.verify + (matched - kept) * (costs.verify + costs.fix)
               + (len(shown) - matched) * costs.delete + (len(true_cls) - matched) * costs.trace)
    return Effort(seconds, len(true_cls) * costs.trace)


MODALITIES = {"boxes": boxes, "choices": choices, "masks": masks, "transcripts": transcripts}
