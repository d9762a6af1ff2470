"""Label Studio's smart-tool context as SAM prompts in pixels.

Label Studio sends the regions drawn with a smart tool as `context = {"result": [...]}`: keypoints (`is_positive`
false for Alt+click, a negative point) and rectangles, in percent of the image size.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from segmentation.prompts import Prompt

from .exceptions import LabelloopError
from .labels import find_controls
from .regions import rect_corners

# Percent coordinates round-trip through floats: a click on the last pixel can come back as 100.0001 %.
_EDGE_TOLERANCE_PX = 1.0


def _num(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _first_label(value: dict, key: str) -> str | None:
    labels = value.get(key) or value.get("labels") or []
    return str(labels[0]) if isinstance(labels, list) and labels else None


def _clamp(v: float, hi: int) -> float:
    return min(max(v, 0.0), float(hi)) if -_EDGE_TOLERANCE_PX <= v <= hi + _EDGE_TOLERANCE_PX else v


def _rect_box(value: dict, w: int, h: int) -> np.ndarray | None:
    """The axis-aligned pixel box around a (possibly rotated) Label Studio rectangle: what SAM takes."""
    try:
        corners = rect_corners(value, w, h)
    except (KeyError, TypeError, ValueError):
        return None
    if not np.isfinite(corners).all():
        return None
    x1, y1 = corners.min(0)
    x2, y2 = corners.max(0)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None  # a rectangle without area says nothing about where the object is
    return np.array([_clamp(x1, w), _clamp(y1, h), _clamp(x2, w), _clamp(y2, h)], dtype=np.float32)


def parse_context(context: dict | None, image_width: int, image_height: int) -> Prompt | None:
    """SAM prompts from a Label Studio smart-tool context.

    Keypoints become points (positive unless `is_positive` is false), the first rectangle with an area the box
    (rotated ones by their bounding box); other region types are ignored. Coordinates are scaled from percent
    with the real image size.

    Args:
        context: the `context` of a predict request, `{"result": [...]}`, or None.
        image_width, image_height: size of the image in pixels.

    Returns:
        The prompt, or None when there is nothing to segment (no positive point and no box).
    """
    items = (context or {}).get("result") or []
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    box = None
    label = box_label = None
    mismatch = False
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            continue
        kind = str(item.get("type", "")).lower()
        value = item["value"]
        if kind not in ("keypointlabels", "keypoint", "rectanglelabels", "rectangle"):
            continue
        ow, oh = _num(item.get("original_width")), _num(item.get("original_height"))
        if ow is not None and oh is not None and (round(ow) != image_width or round(oh) != image_height):
            mismatch = True
        if kind.startswith("keypoint"):
            x, y = _num(value.get("x")), _num(value.get("y"))
            if x is None or y is None:
                continue
            positive = item.get("is_positive", True) is not False
            points.append((_clamp(x / 100 * image_width, image_width), _clamp(y / 100 * image_height, image_height)))
            labels.append(int(positive))
            if positive and label is None:
                label = _first_label(value, "keypointlabels")
        elif box is None:
            box = _rect_box(value, image_width, image_height)
            if box is not None:
                box_label = _first_label(value, "rectanglelabels")
    if box is None and 1 not in labels:
        return None
    return Prompt(points=np.array(points, dtype=np.float32).reshape(-1, 2),
                  point_labels=np.array(labels, dtype=np.int64), box=box,
                  label=label if label is not None else box_label, size_mismatch=mismatch)


@lru_cache(maxsize=64)
def has_smart_tools(label_config: str) -> bool:
    """Whether the config has smart tools (`smart="true"` on a KeyPointLabels or RectangleLabels of an image)."""
    try:
        prompts = find_controls(label_config, ("keypointlabels", "rectanglelabels"), ("image",))
    except LabelloopError:
        return False
    return any(c.attrs.get("smart", "").lower() == "true" for c in prompts)


def label_for(labels: list[str], wanted: str | None) -> str:
    """The control's label for a prompt's label: the same, or the same ignoring case, else the first."""
    if wanted in labels:
        return wanted
    for label in labels:
        if wanted and label.lower() == wanted.lower():
            return label
    return labels[0]
