"""The images of the tasks a region backend (detection, segmentation) predicts: each task's image files through
the media layer, decoded batch by batch within the request's pixel budget (`detection.batches`), and the answer
of each image."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detection.batches import SizedImage, stream_images

from .base import TaskPrediction
from .config import Settings
from .exceptions import LabelloopError
from .media import task_media


def task_id(task: Any) -> Any:
    return task.get("id", "?") if isinstance(task, dict) else "?"


def image_files(tasks: list[dict], keys: set[str], media) -> tuple[list[dict[str, Path] | None], list[str | None]]:
    """Each task's image file per data key (fetched or found through `media`), or None with the error saying why."""
    files: list[dict[str, Path] | None] = []
    errors: list[str | None] = []
    for task in tasks:
        try:
            files.append({key: Path(task_media(task, key, media, "an image")) for key in keys})
            errors.append(None)
        except LabelloopError as e:
            files.append(None)
            errors.append(f"task {task_id(task)}: {e}")
    return files, errors


def stream(tasks: list[dict], keys: set[str], media, settings: Settings, batch: int
           ) -> Iterator[tuple[list[int], list[dict[str, SizedImage]], list[str | None]]]:
    """The tasks' images batch by batch, decoded: (task indices, images by data key, errors naming the task).

    Tasks whose media cannot be had come first; then see `detection.batches.stream_images` (budget
    MAX_REQUEST_PIXELS, at most `batch` images and MAX_IMAGE_PIXELS pixels decoded at a time).
    """
    files, errors = image_files(tasks, keys, media)
    failed = [i for i, e in enumerate(errors) if e is not None]
    if failed:
        yield failed, [{} for _ in failed], [errors[i] for i in failed]
    for idx, images, reasons in stream_images(files, batch, settings.max_image_pixels, settings.max_request_pixels):
        yield idx, images, [None if r is None else f"task {task_id(tasks[i])}: {r}" for i, r in zip(idx, reasons)]


def image_answers(results: list[list[dict]], errors: list[str | None]) -> list[TaskPrediction]:
    """One answer per image: its error, or its regions scored with the image's confidence.

    The image's confidence is the mean of its regions' scores; an image with nothing found is scored 0, i.e. as
    uncertain as it gets, so that it is looked at rather than trusted.
    """
    answers = []
    for res, err in zip(results, errors):
        if err is not None:
            answers.append(TaskPrediction(error=err))
            continue
        scores = [r["score"] for r in res]
        answers.append(TaskPrediction(result=res, score=sum(scores) / len(scores) if scores else 0.0))
    return answers
