"""What it costs an annotator to turn pre-annotated boxes into the right ones: the per-action times (cited) and the
matching of predicted boxes to the boxes the image should end up with.

Pure numpy: the benches simulate annotators with it (`bench/effort.py`) and `detection.threshold` learns a
project's score threshold from what its annotators kept, fixed, deleted and drew.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]

# IoU bands of the simulated annotator: at or above CORRECT_IOU (with the right class) a box is kept as it is; from
# FIX_IOU up it is on the right object and gets dragged into place (or relabelled); below, it is deleted.
CORRECT_IOU = 0.5
FIX_IOU = 0.1


@dataclass(frozen=True)
class BoxCosts:
    """Seconds an annotator spends per box action. The one home of these constants: every bench and the threshold
    learner take them from here.

    - draw 7.0 s: drawing one box by extreme clicking, Papadopoulos, Uijlings, Keller & Ferrari, "Extreme clicking
      for efficient object annotation", ICCV 2017 (7 s per box on PASCAL VOC, crowd-sourced). Drawing the
      traditional way (clicking imaginary corners) took 25.5 s median per box on ILSVRC (Su, Deng & Fei-Fei,
      "Crowdsourcing annotations for visual object detection", AAAI HCOMP workshop 2012), 35-42 s per high-quality
      box with its quality and coverage checks, as both Papadopoulos et al. papers cite it. 7.0 s is the
      conservative choice: a faster drawer gains less from pre-annotation.
    - verify 1.6 s: a yes/no check of one box, the mean verification time reported in Papadopoulos, Uijlings,
      Keller & Ferrari, "We don't need no bounding-boxes: training object class detectors using only human
      verification", CVPR 2016 (PASCAL VOC, crowd-sourced).
    - fix 3.0 s and delete 1.0 s: NOT measured by those studies; assumptions. Fixing = verifying it is the right
      object plus one corner drag or a label change (more than a verification, well under a new box); deleting =
      select and press a key. On coco128 the best threshold stays 0.1 for fix 2-4 s and moves one step (0.05 /
      0.2) for delete 0.5 / 2 s (bench/results/effort_detection.json, cost_sensitivity).
    """

    draw: float = 7.0
    verify: float = 1.6
    fix: float = 3.0
    delete: float = 1.0

    def __post_init__(self) -> None:
        for name in ("draw", "verify", "fix", "delete"):
            value = getattr(self, name)
            if not value >= 0.0:  # NaN fails this too
                raise ValueError(f"BoxCosts.{name} must be a non-negative number of seconds, got {value!r}")


BOX_COSTS = BoxCosts()


@dataclass(frozen=True)
class BoxOutcome:
    """What happened to an image's boxes: predictions kept as they are, fixed or deleted, and objects drawn."""

    correct: int = 0
    fixed: int = 0
    deleted: int = 0
    drawn: int = 0

    def seconds(self, costs: BoxCosts = BOX_COSTS) -> float:
        return (self.correct * costs.verify + self.fixed * costs.fix + self.deleted * costs.delete
                + self.drawn * costs.draw)

    def __add__(self, other: BoxOutcome) -> BoxOutcome:
        return BoxOutcome(self.correct + other.correct, self.fixed + other.fixed, self.deleted + other.deleted,
                          self.drawn + other.drawn)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes; corners in any order."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    a = np.concatenate([np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])], axis=1)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(pred_cls: Sequence[str], pred_boxes: Sequence[Box], true_cls: Sequence[str],
                true_boxes: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
    """What the annotator does with each predicted box, given the boxes the image must end up with
    (`match_by_iou` over the boxes' IoU, at CORRECT_IOU and FIX_IOU)."""
    if len(pred_cls) == 0 or len(true_cls) == 0:
        return np.full(len(pred_cls), -1, dtype=int), np.zeros(len(pred_cls), dtype=bool)
    return match_by_iou(pred_cls, true_cls, box_iou(pred_boxes, true_boxes))


def match_by_iou(pred_cls: Sequence[str], true_cls: Sequence[str], iou: np.ndarray, correct_iou: float = CORRECT_IOU,
                 fix_iou: float = FIX_IOU) -> tuple[np.ndarray, np.ndarray]:
    """What the annotator does with each prediction, given the objects the image must end up with and the
    (len(pred), len(true)) IoU of their regions (boxes, masks).

    Greedy, in the order given (pass predictions by descending score, as COCO matching does): a prediction takes
    the unclaimed true object of its class with the highest IoU >= correct_iou (correct: kept as it is); failing
    that, the unclaimed true object of any class with the highest IoU >= fix_iou (fixed: moved or relabelled onto
    it); else it is false (deleted). A true object claimed by no prediction is drawn.

    Returns:
        (target, correct): per prediction, the index of the true object it ends up as (-1: deleted) and whether it
        was right as predicted.
    """
    n, m = len(pred_cls), len(true_cls)
    target = np.full(n, -1, dtype=int)
    correct = np.zeros(n, dtype=bool)
    if n == 0 or m == 0:
        return target, correct
    same = np.asarray([[p == t for t in true_cls] for p in pred_cls], dtype=bool)
    free = np.ones(m, dtype=bool)
    for i in range(n):
        good = np.where(free & same[i] & (iou[i] >= correct_iou), iou[i], -1.0)
        if good.max() >= 0.0:
            j = int(good.argmax())
            correct[i] = True
        else:
            near = np.where(free & (iou[i] >= fix_iou), iou[i], -1.0)
            if near.max() < 0.0:
                continue
            j = int(near.argmax())
        target[i], free[j] = j, False
    return target, correct


def box_outcome(pred_cls: Sequence[str], pred_boxes: Sequence[Box], true_cls: Sequence[str],
                true_boxes: Sequence[Box]) -> BoxOutcome:
    """Counts of kept, fixed, deleted and drawn boxes for one image pre-annotated with the given predictions
    (sorted by descending score)."""
    target, correct = match_boxes(pred_cls, pred_boxes, true_cls, true_boxes)
    matched = int((target >= 0).sum())
    return BoxOutcome(correct=int(correct.sum()), fixed=matched - int(correct.sum()),
                      deleted=len(pred_cls) - matched, drawn=len(true_cls) - matched)


def scratch_seconds(n_objects: int, costs: BoxCosts = BOX_COSTS) -> float:
    """Seconds to label an image without pre-annotations: every object drawn."""
    return n_objects * costs.draw


def f1(outcome: BoxOutcome) -> float:
    """F1 of a pre-annotation against the final boxes, counting only boxes kept as they are as right (fixed ones
    are wrong twice: a false box and a missed object). An image with nothing predicted and nothing to find is 1."""
    predicted = outcome.correct + outcome.fixed + outcome.deleted
    actual = outcome.correct + outcome.fixed + outcome.drawn
    if predicted + actual == 0:
        return 1.0
    return 2.0 * outcome.correct / (predicted + actual)
