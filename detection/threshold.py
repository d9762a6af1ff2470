"""The score threshold that costs annotators least: boxes shown below it would cost deletions, objects hidden above
it cost drawing. Learned from a project's own annotated images (what its annotators kept, fixed, deleted and drew)
or measured on a labelled data set by the bench.

Pure numpy. Input per image: the model's candidate boxes down to a low floor (`Detection`s) and the boxes the image
ended up with (the submitted annotation, as (class, xyxy)).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .effort import BOX_COSTS, BoxCosts, BoxOutcome, box_outcome, scratch_seconds
from .types import Detection

Truth = tuple[str, tuple[float, float, float, float]]
Image = tuple[Sequence[Detection], Sequence[Truth]]

# thresholds tried: 0.05 .. 0.90 in steps of 0.05
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 19))
# fewer annotated objects than this say too little to move a project off its default: on coco128 a threshold
# learned from ~110 objects (16 images) saves 0.429 of the drawing time on the other images, 0.013 short of the
# best threshold for them; from ~34 objects 0.415, with a worst case of 0.31 (bench/results/effort_detection.json)
MIN_OBJECTS = 100


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold that minimises annotation time, with the curve it was read from.

    Attributes:
        threshold: the best of `thresholds`.
        thresholds: the thresholds tried.
        seconds: annotation seconds at each threshold, over all images.
        scratch_seconds: seconds to draw every box without pre-annotations.
        images, objects: how much it was learned from.
    """

    threshold: float
    thresholds: tuple[float, ...]
    seconds: tuple[float, ...]
    scratch_seconds: float
    images: int
    objects: int

    def saving(self, threshold: float | None = None) -> float:
        """Fraction of the scratch time saved at `threshold` (default: the chosen one); 0 when nothing to draw."""
        t = self.threshold if threshold is None else threshold
        if self.scratch_seconds <= 0:
            return 0.0
        return 1.0 - self.seconds[self.thresholds.index(t)] / self.scratch_seconds


def outcome_at(detections: Sequence[Detection], truths: Sequence[Truth], threshold: float) -> BoxOutcome:
    """What the annotator does to one image pre-annotated with the detections scored >= threshold."""
    shown = sorted((d for d in detections if d.score >= threshold), key=lambda d: -d.score)
    return box_outcome([d.cls for d in shown], [d.xyxy for d in shown], [c for c, _ in truths],
                       [b for _, b in truths])


def effort_curve(images: Sequence[Image], thresholds: Sequence[float] = THRESHOLDS,
                 costs: BoxCosts = BOX_COSTS) -> np.ndarray:
    """(len(images), len(thresholds)) annotation seconds per image and threshold."""
    out = np.zeros((len(images), len(thresholds)))
    for i, (dets, truths) in enumerate(images):
        for k, t in enumerate(thresholds):
            out[i, k] = outcome_at(dets, truths, t).seconds(costs)
    return out


def choose_threshold(images: Sequence[Image], thresholds: Sequence[float] = THRESHOLDS,
                     costs: BoxCosts = BOX_COSTS) -> ThresholdChoice:
    """The threshold with the least total annotation time over `images` (the lowest one on a tie).

    Raises:
        ValueError: no images or no thresholds, or a threshold outside [0, 1].
    """
    thresholds = tuple(float(t) for t in thresholds)
    if not images or not thresholds:
        raise ValueError("choose_threshold needs at least one image and one threshold")
    if not all(0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds must lie in [0, 1], got {thresholds}")
    seconds = effort_curve(images, thresholds, costs).sum(axis=0)
    objects = sum(len(truths) for _, truths in images)
    return ThresholdChoice(threshold=thresholds[int(np.argmin(seconds))], thresholds=thresholds,
                           seconds=tuple(float(s) for s in seconds),
                           scratch_seconds=scratch_seconds(objects, costs), images=len(images), objects=objects)


def learn_threshold(images: Sequence[Image], default: float, thresholds: Sequence[float] = THRESHOLDS,
                    costs: BoxCosts = BOX_COSTS, min_objects: int = MIN_OBJECTS) -> float:
    """A project's threshold from its annotated images: the cheapest one once there are `min_objects` annotated
    objects, `default` before.

    Args:
        images: per annotated image, the candidates of the model that will serve (predicted at a floor below every
            threshold tried, e.g. 0.001) and the submitted boxes.
        default: the threshold to keep while the evidence is thin.
    """
    if sum(len(truths) for _, truths in images) < min_objects:
        return float(default)
    return choose_threshold(images, thresholds, costs).threshold
