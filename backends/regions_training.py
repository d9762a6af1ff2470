"""Submitted annotations of region controls as the task packages' training examples: detection's `Sample`s from
boxes, outlines and brush masks (as the outline of the mask's largest part), segmentation's (image, mask) pairs
from brush masks and polygons. What cannot be used (an image that cannot be had, a region of a label the config
no longer has, an unreadable mask) is skipped, logged and counted."""
from __future__ import annotations

import logging

import numpy as np

from detection.batches import SizedImage
from detection.geometry import outline_xyxy
from detection.images import ImageError, image_size, load_image
from detection.types import LabeledObject, Sample
from segmentation.masks import mask_outline

from .base import LabeledTask
from .exceptions import LabelloopError
from .labels import Control
from .media import task_media
from .regions import region_mask, region_outline
from .regions_images import image_files

log = logging.getLogger(__name__)


def sized_images(examples: list[LabeledTask], keys: set[str], media,
                 max_image_pixels: int) -> list[dict[str, SizedImage] | None]:
    """Each example's images by data key with their sizes (from the headers), or None when unusable."""
    files, errors = image_files([{"id": ex.task_id, "data": ex.data} for ex in examples], keys, media)
    out: list[dict[str, SizedImage] | None] = []
    for ex, found, err in zip(examples, files, errors):
        try:
            if err is not None:
                raise LabelloopError(err)
            out.append({k: SizedImage(p, *image_size(p, max_image_pixels)) for k, p in found.items()})
        except (ImageError, OSError, LabelloopError) as e:
            log.warning("training example skipped: %s", e if err else f"task {ex.task_id}: {e}")
            out.append(None)
    return out


def detection_samples(control: Control, examples: list[LabeledTask], sizes: list[dict[str, SizedImage] | None],
                      cls_of: dict[str, str]) -> tuple[list[Sample], dict[str, int]]:
    """The examples with a usable image as `Sample`s of this control's regions (by training class, `cls_of`), and
    the count of regions per label the config no longer has."""
    samples, unknown = [], {}
    for ex, found in zip(examples, sizes):
        if found is None:
            continue
        im = found[control.value_key]
        sample = Sample(id=str(ex.task_id), image=im.path, width=im.width, height=im.height)
        for item in ex.result:
            outline = _outline(item, control, im.width, im.height) if item.get("from_name") == control.name else None
            if outline is None:
                continue
            label, points = outline
            if label not in control.labels:
                unknown[label] = unknown.get(label, 0) + 1
                log.warning("task %s: label %r is not in <%s name=%r> any more; region skipped", ex.task_id,
                            label, control.tag, control.name)
                continue
            polygon = None if control.tag == "rectanglelabels" else points  # a box is trained as its box
            sample.objects.append(LabeledObject(cls_of[label], outline_xyxy(points, im.width, im.height), polygon))
        samples.append(sample)
    return samples, unknown


def _outline(item: dict, control: Control, width: int, height: int) -> tuple[str, np.ndarray] | None:
    """Label and pixel outline of a result item; a brush mask's is the outline of its largest part (YOLO trains
    one polygon per object)."""
    if control.tag != "brushlabels" or item.get("type") != "brushlabels":
        return region_outline(item, width, height)
    labels = (item.get("value") or {}).get("brushlabels")
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        return None
    if labels[0] not in control.labels:
        return labels[0], np.zeros((0, 2))  # counted as a label the config no longer has, not decoded
    try:
        points = mask_outline(region_mask(item, control.tag, width, height))
    except ValueError as e:
        log.warning("brush region skipped: %s", e)
        return None
    return (labels[0], points) if points is not None and len(points) >= 3 else None


def mask_pairs(examples: list[LabeledTask], controls: tuple[Control, ...], media,
               max_image_pixels: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """(image, mask) per submitted brush mask or polygon; counts of what was skipped and why."""
    pairs, skipped = [], {"skipped_images": 0, "skipped_regions": 0, "unknown_labels": {}}
    for ex in examples:
        for control in controls:
            items = [r for r in ex.result if r.get("from_name") == control.name]
            if not items:
                continue
            try:
                image = load_image(task_media({"id": ex.task_id, "data": ex.data}, control.value_key, media,
                                              "an image"), max_image_pixels)
            except (ImageError, LabelloopError) as e:
                log.warning("training example skipped: task %s: %s", ex.task_id, e)
                skipped["skipped_images"] += 1
                continue
            pairs += _control_masks(ex, control, items, image, skipped)
    return pairs, skipped


def _control_masks(ex: LabeledTask, control: Control, items: list[dict], image: np.ndarray,
                   skipped: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for item in items:
        labels = (item.get("value") or {}).get(control.tag) or []
        if labels and labels[0] not in control.labels:
            skipped["unknown_labels"][labels[0]] = skipped["unknown_labels"].get(labels[0], 0) + 1
            continue
        try:
            mask = region_mask(item, control.tag, image.shape[1], image.shape[0])
        except ValueError as e:
            log.warning("task %s: region skipped: %s", ex.task_id, e)
            skipped["skipped_regions"] += 1
            continue
        if mask.any():
            pairs.append((image, mask))
    return pairs
