"""Serving region controls (detection's boxes and outlines, segmentation's automatic masks): the tasks' images
streamed through each control's model runs (fetched and decoded by a background thread while the model runs,
`detection.pipeline`), every image answered with its regions and its confidence, or with the error naming the
task."""
from __future__ import annotations

import logging
from collections.abc import Callable

from detection.batches import SizedImage
from detection.predict import Plan, run_plans
from detection.scoring import FLOOR
from detection.types import Detection
from selection.uncertainty import Measure

from .base import TaskPrediction
from .config import Settings
from .regions_images import control_confidence, image_answers, stream, task_id
from .regions_writers import RegionWriter

log = logging.getLogger(__name__)

# one image's regions of one control: its writer, the detections it shows (label, detection), the image
ToRegions = Callable[[RegionWriter, list[tuple[str, Detection]], SizedImage], list[dict]]


def predict_controls(tasks: list[dict], plans: list[tuple[RegionWriter, list[Plan]]], media, settings: Settings,
                     batch: int, imgsz: int | None, measure: Measure | None, to_regions: ToRegions,
                     what: str = "regions") -> list[TaskPrediction]:
    """One answer per task: every control's regions, scored by the least confident control.

    Args:
        plans: each control's writer and the model runs covering its labels (none: the control gets no regions
            from a model, but `to_regions` is still called, with no detections).
        batch: the most images predicted at a time; on CPU only images of one shape are batched, and the next
            images are fetched and decoded while the current ones are predicted (`detection.pipeline`).
        imgsz: the inference size (None: each model's own).
        measure: the uncertainty measure over class probabilities (`control_confidence`).
        to_regions: turns the shown detections of one image into result items; an exception it raises costs only
            that task (its error says `what` failed).
    """
    answers: list[TaskPrediction | None] = [None] * len(tasks)
    keys = {w.control.value_key for w, _ in plans}
    for idx, images, errors in stream(tasks, keys, media, settings, batch):
        results: list[list[dict]] = [[] for _ in idx]
        confidences: list[list[float]] = [[] for _ in idx]
        for writer, control_plans in plans:
            ok = [k for k, e in enumerate(errors) if e is None]
            key = writer.control.value_key
            # every candidate down to the floor scores the task; only those from the threshold up are shown
            found = run_plans(control_plans, [images[k][key].array for k in ok], imgsz, batch,
                              conf=min(FLOOR, writer.threshold))
            for k, dets in zip(ok, found):
                tid = task_id(tasks[idx[k]])
                if isinstance(dets, Exception):
                    errors[k] = f"task {tid}: prediction failed ({type(dets).__name__}: {dets})"
                    continue
                if control_plans:
                    confidences[k].append(control_confidence(dets, writer.threshold, measure))
                try:
                    results[k] += to_regions(writer, writer.shown(dets), images[k][key])
                except Exception as e:  # a failure on one image must not cost the batch
                    log.exception("task %s: %s failed", tid, what)
                    errors[k] = f"task {tid}: {what} failed ({type(e).__name__}: {e})"
        for i, answer in zip(idx, image_answers(results, errors, confidences)):
            answers[i] = answer
    return answers
