"""The images of the tasks an image backend predicts: each task's image files through the media layer, fetched and
decoded by a background thread batch by batch within the request's pixel budget (`detection.pipeline`), and the
answer of each image."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from detection.batches import SizedImage, each_on_failure
from detection.model import Detector, gpu_available
from detection.pipeline import LOOKAHEAD, ImagePipeline
from detection.scoring import image_confidence
from detection.types import Detection
from selection import combine
from selection.uncertainty import Measure

from .base import TaskEmbedding, TaskPrediction
from .config import Settings
from .exceptions import LabelloopError
from .media import task_media

log = logging.getLogger(__name__)


def task_id(task: Any) -> Any:
    return task.get("id", "?") if isinstance(task, dict) else "?"


def task_files(tasks: list[dict], keys: set[str], media, i: int) -> dict[str, Path] | str:
    """Task `i`'s image file per data key (fetched or found through `media`), or the reason it has none."""
    try:
        return {key: Path(task_media(tasks[i], key, media, "an image")) for key in keys}
    except LabelloopError as e:
        return str(e)


def image_files(tasks: list[dict], keys: set[str], media) -> tuple[list[dict[str, Path] | None], list[str | None]]:
    """Each task's image file per data key, or None with the error naming the task."""
    found = [task_files(tasks, keys, media, i) for i in range(len(tasks))]
    return ([None if isinstance(f, str) else f for f in found],
            [f"task {task_id(t)}: {f}" if isinstance(f, str) else None for t, f in zip(tasks, found)])


def stream(tasks: list[dict], keys: set[str], media, settings: Settings, batch: int
           ) -> Iterator[tuple[list[int], list[dict[str, SizedImage]], list[str | None]]]:
    """The tasks' images batch by batch, decoded: (task indices, images by data key, errors naming the task).

    A background thread fetches and decodes the next tasks while the caller works on a batch
    (`detection.pipeline.ImagePipeline`: at most `batch` + LOOKAHEAD tasks' images alive, the request's
    MAX_REQUEST_PIXELS spent in task order). A task with an error comes alone. On CPU a batch holds only images
    of one shape, what is loaded already (Ultralytics pads mixed shapes to a square, slower than one at a time and
    not the same boxes); on a GPU, full batches of any shapes.
    """
    pipeline = ImagePipeline(len(tasks), partial(task_files, tasks, keys, media), batch + LOOKAHEAD,
                             settings.max_image_pixels, settings.max_request_pixels)
    gpu = gpu_available()
    for items in pipeline.batches(batch, same_shape=not gpu, fill=gpu):
        yield ([item.index for item in items], [item.images for item in items],
               [None if item.error is None else f"task {task_id(tasks[item.index])}: {item.error}" for item in items])


def control_confidence(found: list[tuple[str, Detection]], threshold: float, measure: Measure | None) -> float:
    """A control's confidence in one image: the F1 its pre-annotation is expected to have
    (`detection.scoring.image_confidence`) from every candidate the model found down to the floor, the shown
    ones (at or above `threshold`) and the hidden ones, with `measure` over their class probabilities where the
    model gives them for every candidate."""
    rows = [d.class_probs for _, d in found]
    probs = np.stack(rows) if rows and all(r is not None for r in rows) and len({len(r) for r in rows}) == 1 \
        else None
    return image_confidence([d.score for _, d in found], threshold, probs, measure)


def image_answers(results: list[list[dict]], errors: list[str | None],
                  confidences: list[list[float]]) -> list[TaskPrediction]:
    """One answer per image: its error, or its regions scored with the image's confidence.

    Args:
        confidences: per image, the confidence of each control the models predicted (`control_confidence`).

    The image's confidence is its least confident control's (`selection.combine`); an image no model looked at
    (no control has a model for its labels) is scored 0, so that it is looked at rather than trusted.
    """
    answers = []
    for res, err, conf in zip(results, errors, confidences):
        if err is not None:
            answers.append(TaskPrediction(error=err))
            continue
        score = float(combine([np.array([c]) for c in conf])[0]) if conf else 0.0
        answers.append(TaskPrediction(result=res, score=score))
    return answers


def image_embeddings(detector: Detector, tasks: list[dict], key: str, media, settings: Settings, batch: int,
                     imgsz: int | None = None) -> list[TaskEmbedding]:
    """One vector per task for diversity-aware ranking: `detector`'s pooled features of the task's image under
    data `key` (`Detector.embed`), or the error naming the task; a batch that fails is retried image by image."""
    out = [TaskEmbedding() for _ in tasks]
    for idx, images, errors in stream(tasks, {key}, media, settings, batch):
        ok = [j for j, e in enumerate(errors) if e is None]
        for j, vector in zip(ok, _vectors(detector, [images[j][key].array for j in ok], imgsz, batch)):
            if isinstance(vector, Exception):
                errors[j] = f"task {task_id(tasks[idx[j]])}: features failed ({type(vector).__name__}: {vector})"
            else:
                out[idx[j]].vector = [round(float(x), 6) for x in vector]
        for j, err in enumerate(errors):
            out[idx[j]].error = err
    return out


def _vectors(detector: Detector, arrays: list, imgsz: int | None, batch: int) -> list:
    return each_on_failure(lambda xs: detector.embed(xs, imgsz, batch if len(xs) > 1 else 1), arrays)
