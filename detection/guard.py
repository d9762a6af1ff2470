"""Fine-tuning one labeling control's model and deciding whether to publish it: the candidate is trained on the
annotated images, then evaluated beside the served model on the same held-out images (box mAP; for segmentation
models also mask mAP, which a segmentation backend judges by), and published only if it is at least as good (plus a
required gain).

`train_control` returns the candidate's weights, its metrics and the publish decision; the caller (the Label
Studio adapter) only translates annotations into `Sample`s and the decision into a version.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .dataset import build_dataset
from .evaluate import PREDICT_CONF, evaluate, evaluate_masks
from .images import load_image
from .model import Detector
from .predict import Plan, run_plans
from .threshold import MIN_OBJECTS, choose_threshold
from .classes import extend_classes
from .train import TrainOptions, finetune
from .types import Detection, Sample

METRICS = ("map50", "map50_95", "mask_map50", "mask_map50_95")  # mask_*: segmentation models only


@dataclass(frozen=True)
class Guard:
    """How a candidate is validated and judged.

    Attributes:
        val_fraction: share of the images held out (by a hash of their id).
        metric: "map50" or "map50_95" (box), "mask_map50" or "mask_map50_95" (segmentation models), the one the
            decision is made on.
        min_gain: how much the candidate must beat the served model by (0: a tie publishes).
    """

    METRICS: ClassVar[tuple[str, ...]] = METRICS  # the metrics this kind of model is validated by

    val_fraction: float = 0.2
    metric: str = "map50_95"
    min_gain: float = 0.0

    def __post_init__(self):
        if self.metric not in self.METRICS:
            raise ValueError(f"guard_metric must be one of {', '.join(self.METRICS)}, not {self.metric!r}")


@dataclass
class ControlFit:
    """A trained candidate: its weights, its metrics and whether it may be served (else `reason` says why not)."""

    weights: Path
    task: str
    classes: list[str]
    metrics: dict[str, Any]
    publish: bool
    reason: str


def training_classes(labels: Sequence[str], base_label: dict[str, str]) -> dict[str, str]:
    """Label -> training class name: the base model's class when exactly one of its classes stands for the label
    (its learned weights are kept), else the label itself (trained as a new class). Fine-tuned versions keep these
    names, so every version maps back onto the labels the same way.

    Args:
        labels: the labels to train.
        base_label: the base model's class -> the label it stands for (classes standing for none left out).
    """
    out = {}
    for label in labels:
        classes = [c for c, lb in base_label.items() if lb == label]
        out[label] = classes[0] if len(classes) == 1 else label
    return out


def train_control(samples: Sequence[Sample], class_names: list[str], start: str | Path, served: Sequence[Plan],
                  work: Path, task: str, opts: TrainOptions, guard: Guard, max_pixels: int,
                  imgsz: int | None = None, batch: int = 8) -> ControlFit:
    """Fine-tune `start` on `samples` and judge the candidate against the served model.

    Args:
        samples: annotated images whose objects are named by training class.
        class_names: the candidate's classes, in order.
        start: trainable .pt weights to start from (a served version's, or the base model's).
        served: the plans the served model predicts with, their labels being training class names.
        work: the folder to train in; the candidate ends up as `work/weights.pt`.
        task: "detect" or "segment".
        max_pixels: the image decoding limit (validation images are decoded).
        imgsz, batch: inference size and batch for the evaluation.

    Raises:
        detection.train.TrainingError: training failed.
        ValueError: a mask metric to judge a box model by.
    """
    if guard.metric.startswith("mask_") and task != "segment":
        raise ValueError(f"guard_metric {guard.metric} needs a segmentation model; this one is a {task} model")
    work.mkdir(parents=True, exist_ok=True)
    first = extend_classes(start, class_names, work / "start.pt")
    data = build_dataset(samples, class_names, work / "dataset", task=task, val_fraction=guard.val_fraction)
    try:
        report = finetune(first, data.data_yaml, work, opts, task)
    finally:
        Path(first).unlink(missing_ok=True)
        shutil.rmtree(work / "dataset", ignore_errors=True)  # links to media-cache files: nothing to keep
    val_ids = set(data.val_ids)  # the images validation ran on: build_dataset skips unreadable ones
    val = [s for s in samples if str(s.id) in val_ids]
    candidate = Detector.load(report.weights, task)
    new_plan = Plan(candidate, {c: c for c in candidate.names}, PREDICT_CONF)
    arrays = [load_image(s.image, max_pixels) for s in val]  # decoded once, for both models
    found: list[list[Detection]] = []
    old_found: list[list[Detection]] = []
    new_m = _evaluate([new_plan], val, arrays, class_names, imgsz, batch, keep=found)
    old_m = _evaluate(served, val, arrays, class_names, imgsz, batch, keep=old_found)
    if task == "segment":
        new_m.update(mask_metrics(found, val, class_names))
        old_m.update(mask_metrics(old_found, val, class_names))
    metric, gain = guard.metric, guard.min_gain
    publish = new_m[metric] >= old_m[metric] + gain - 1e-9
    reason = "" if publish else (f"validation {metric} {new_m[metric]:.4f} is below the served model's "
                                 f"{old_m[metric]:.4f}" + (f" + {gain}" if gain else ""))
    metrics = {"map50": new_m["map50"], "map50_95": new_m["map50_95"], "served_map50": old_m["map50"],
               "served_map50_95": old_m["map50_95"], "per_class": new_m["per_class"],
               "train_images": len(data.train_ids), "val_images": len(val), "classes": class_names,
               "epochs": report.epochs_run, "seconds_per_epoch": round(report.seconds_per_epoch, 2),
               "seconds": round(report.seconds, 1), "task": task,
               "learned_threshold": learned_threshold(list(zip(found, [s.boxes for s in val]))),
               "guard_metric": metric}
    if task == "segment":
        metrics.update({k: new_m[k] for k in ("mask_map50", "mask_map50_95", "mask_per_class")},
                       served_mask_map50=old_m["mask_map50"], served_mask_map50_95=old_m["mask_map50_95"])
    return ControlFit(report.weights, task, class_names, metrics, publish, reason)


def learned_threshold(images: list) -> float | None:
    """The project's own score threshold from the candidate's detections on the held-out images and what was
    submitted there (`detection.threshold`), or None while they hold too few objects to move off the default."""
    if sum(len(truths) for _, truths in images) < MIN_OBJECTS:
        return None
    return choose_threshold(images).threshold


def mask_metrics(predictions: list[list[Detection]], val: Sequence[Sample], class_names: list[str]) -> dict:
    """Mask mAP of per-image `predictions` on the samples `val`; an object annotated as a box counts as its box."""
    def outline(o) -> np.ndarray:
        if o.polygon is not None:
            return o.polygon
        x1, y1, x2, y2 = o.xyxy
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=float)

    if not val:
        return {"mask_map50": 0.0, "mask_map50_95": 0.0, "mask_per_class": {}}
    m = evaluate_masks(predictions, [[(o.cls, outline(o)) for o in s.objects] for s in val],
                       [(s.width, s.height) for s in val], class_names)
    return {"mask_map50": m["map50"], "mask_map50_95": m["map50_95"], "mask_per_class": m["per_class"]}


def _evaluate(plans: Sequence[Plan], val: Sequence[Sample], arrays: list, class_names: list[str],
              imgsz: int | None, batch: int, keep: list | None = None) -> dict:
    """mAP of `plans` on the validation samples `val`, whose decoded images are `arrays`; their detections are
    added to `keep` when given."""
    if not val:
        return {"map50": 0.0, "map50_95": 0.0, "per_class": {}}
    predictions = []
    for dets in run_plans(plans, arrays, imgsz, batch, conf=PREDICT_CONF):
        found = [] if isinstance(dets, Exception) else dets
        predictions.append([Detection(cls, d.score, d.xyxy, d.polygon) for cls, d in found])
    if keep is not None:
        keep.extend(predictions)
    return evaluate(predictions, [s.boxes for s in val], class_names)
