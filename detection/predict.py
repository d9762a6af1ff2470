"""Prediction over several models at once: each `Plan` is one model run for some of its classes, each class
standing for one of the caller's labels; a batch that fails is retried image by image."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from .batches import each_on_failure
from .model import Detector
from .types import Detection

IMGSZ_RANGE = (32, 2048)  # inference and training sizes; memory grows with the square
FORWARD_PIXELS = 8 * 1024 * 1024  # most letterboxed pixels in one forward pass (8 images at 1024)


@dataclass
class Plan:
    """One model run: the detector, and the label each wanted class of it stands for (its keys, in order, are the
    classes predicted)."""

    detector: Detector
    labels: dict[str, str]
    conf: float

    @property
    def classes(self) -> list[str]:
        return list(self.labels)


def forward_batch(batch: int, imgsz: int | None) -> int:
    """Images per forward pass: `batch`, cut down for a large `imgsz` so that one pass stays within
    `FORWARD_PIXELS`."""
    if not imgsz:
        return max(1, batch)
    return max(1, min(batch, FORWARD_PIXELS // (imgsz * imgsz)))


def run_plans(plans: Sequence[Plan], arrays: Sequence[np.ndarray], imgsz: int | None = None, batch: int = 8,
              conf: float | None = None) -> list[list[tuple[str, Detection]] | Exception]:
    """(label, detection) per image, over all plans.

    Args:
        arrays: RGB images.
        imgsz: inference size (None: each model's own).
        batch: images per forward pass (cut down for a large imgsz, see `forward_batch`).
        conf: a minimum score for every plan instead of each plan's own.

    Returns:
        Per image its (label, detection) pairs, or the Exception its prediction raised: a batch that fails is
        retried image by image, so one bad image costs only itself. A detection's `class_probs`, where its model
        gives them, are over the plans' labels (see `plan_labels`), so that the rows of all plans line up.
    """
    labels = plan_labels(plans)
    out: list = [[] for _ in arrays]
    kw = dict(imgsz=imgsz, batch=forward_batch(batch, imgsz))
    for plan in plans:
        args = dict(kw, conf=plan.conf if conf is None else conf, classes=plan.classes)
        per_image = each_on_failure(partial(plan.detector.predict, **args), arrays)
        for i, dets in enumerate(per_image):
            if isinstance(out[i], Exception):
                continue
            if isinstance(dets, Exception):
                out[i] = dets
                continue
            out[i].extend((plan.labels[d.cls], _on_labels(d, plan, labels)) for d in dets if d.cls in plan.labels)
    return out


def plan_labels(plans: Sequence[Plan]) -> list[str]:
    """The labels the plans stand for, in the order they first appear."""
    return list(dict.fromkeys(label for plan in plans for label in plan.labels.values()))


def _on_labels(d: Detection, plan: Plan, labels: list[str]) -> Detection:
    """`d` with its class probabilities (over the plan's classes) moved onto `labels`: a label several classes
    stand for gets the highest of them (YOLO's class scores are independent sigmoids, not shares of one); a label
    of another plan gets 0."""
    if d.class_probs is None or len(d.class_probs) != len(plan.labels):
        return replace(d, class_probs=None) if d.class_probs is not None else d
    row = np.zeros(len(labels))
    column = {label: j for j, label in enumerate(labels)}
    for p, label in zip(d.class_probs, plan.labels.values()):
        j = column[label]
        row[j] = max(row[j], float(p))
    return replace(d, class_probs=row)
