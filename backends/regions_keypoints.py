"""Label Studio's keypoint regions to and from pixels (`keypoints.types.Instance`).

A keypoint is a result item of type "keypointlabels" whose value is {x, y, width, keypointlabels: [label]}: x and
y the point in percent of the image, width the drawn dot's size in percent of the image width. Each point is an
item of its own; the points of one instance (a face, a body) point at their instance's rectangle through
`parentID` when the config also has `<RectangleLabels>` on the image (as in Label Studio's YOLO pose example).

`skeletons` reads a config's KeyPointLabels controls (smart ones are segmentation's prompts, not served here) with
their rectangle control and which of their labels face landmarks predict (`keypoints.landmarks`).
"""
from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from keypoints.landmarks import is_face_label, landmark_map
from keypoints.types import Instance, Keypoint

from .exceptions import UnsupportedConfig
from .labels import Control, find_controls
from .regions import rect_corners, xyxy_to_rect_value
from .regions_models import THRESHOLD

log = logging.getLogger(__name__)

POINT_SIZE = 1.0  # the dot's size in pixels (Label Studio's YOLO example: model_point_size, default 1)


@dataclass
class KeypointWriter:
    """Writes `Instance`s as result items of one KeyPointLabels control and, when given, its instance rectangles
    (labelled `box_label` of `rect`)."""

    control: Control
    rect: Control | None = None
    box_label: str | None = None

    def items(self, inst: Instance, width: int, height: int, min_point_score: float = 0.0) -> list[dict]:
        """The result items of one instance: its rectangle (when there is a rectangle control and label) and each
        of its points scored at least `min_point_score` inside the image, the points children of the rectangle."""
        common = {"to_name": self.control.to_name, "original_width": width, "original_height": height,
                  "image_rotation": 0}
        out, parent = [], None
        if self.rect is not None and self.box_label and inst.xyxy is not None:
            value = xyxy_to_rect_value(inst.xyxy, width, height)
            if value["width"] > 0 and value["height"] > 0:
                parent = uuid.uuid4().hex[:10]
                out.append({"id": parent, "from_name": self.rect.name, "type": "rectanglelabels", **common,
                            "score": round(float(inst.score), 4),
                            "value": {**value, "rectanglelabels": [self.box_label]}})
        size = float(self.control.attrs.get("model_point_size") or POINT_SIZE)
        for p in inst.points:
            if p.score < min_point_score or not (0 <= p.x <= width and 0 <= p.y <= height):
                continue
            item = {"id": uuid.uuid4().hex[:10], "from_name": self.control.name, "type": "keypointlabels", **common,
                    "score": round(float(p.score), 4),
                    "value": {"x": 100.0 * p.x / width, "y": 100.0 * p.y / height, "width": 100.0 * size / width,
                              "keypointlabels": [p.label]}}
            if parent is not None:
                item["parentID"] = parent
            out.append(item)
        return out


def _point(item: dict, width: int, height: int) -> Keypoint | None:
    value = item.get("value")
    labels = value.get("keypointlabels") if isinstance(value, dict) else None
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        return None
    try:
        x, y = float(value["x"]) * width / 100.0, float(value["y"]) * height / 100.0
    except (KeyError, TypeError, ValueError):
        return None
    return Keypoint(labels[0], x, y) if np.isfinite([x, y]).all() else None


def _box(item: dict, width: int, height: int) -> tuple[float, float, float, float] | None:
    try:
        corners = rect_corners(item["value"], width, height)
    except (KeyError, TypeError, ValueError):
        return None
    x1, y1 = corners.min(axis=0)
    x2, y2 = corners.max(axis=0)
    return (float(x1), float(y1), float(x2), float(y2)) if x2 > x1 and y2 > y1 else None


def annotated_instances(result: list[dict], control: Control, rect: Control | None, width: int, height: int
                        ) -> tuple[list[Instance], Counter, list[str]] | None:
    """The instances one annotation holds for a KeyPointLabels control: its points grouped by their rectangle
    (`parentID`, else the smallest rectangle of `rect` holding the point), or all points as one instance where
    the annotation has no rectangles. Points of labels the config no longer has are counted, not used.

    Returns:
        (instances, unknown labels counted, rectangle labels of the instances), or None when the points cannot be
        told apart (no rectangles, and a label that occurs twice).
    """
    rects: dict[str, tuple[float, float, float, float]] = {}
    rect_labels: dict[str, str] = {}
    points: list[tuple[Keypoint, str | None]] = []
    unknown: Counter = Counter()
    for n, item in enumerate(r for r in result if isinstance(r, dict)):
        if rect is not None and item.get("from_name") == rect.name and item.get("type") == "rectanglelabels":
            box = _box(item, width, height)
            if box is not None:
                key = str(item.get("id") or f"#{n}")
                rects[key] = box
                labels = (item.get("value") or {}).get("rectanglelabels") or [None]
                rect_labels[key] = labels[0] if isinstance(labels[0], str) else None
        elif item.get("from_name") == control.name and item.get("type") == "keypointlabels":
            p = _point(item, width, height)
            if p is None:
                continue
            if p.label not in control.labels:
                unknown[p.label] += 1
                continue
            points.append((p, item.get("parentID")))
    if not rects:
        if len({p.label for p, _ in points}) < len(points):
            return None
        return ([Instance([p for p, _ in points])] if points else []), unknown, []
    grouped: dict[str, list[Keypoint]] = {k: [] for k in rects}
    for p, parent in points:
        key = parent if parent in rects else _holding(rects, p)
        if key is not None:
            grouped[key].append(p)
    found = [(Instance(pts, 1.0, rects[k]), rect_labels[k]) for k, pts in grouped.items() if pts]
    return [i for i, _ in found], unknown, [lb for _, lb in found if lb]


def _holding(rects: dict[str, tuple[float, float, float, float]], p: Keypoint) -> str | None:
    """The smallest rectangle that holds the point, or None."""
    inside = [(k, (b[2] - b[0]) * (b[3] - b[1])) for k, b in rects.items()
              if b[0] <= p.x <= b[2] and b[1] <= p.y <= b[3]]
    return min(inside, key=lambda kv: kv[1])[0] if inside else None


@dataclass(frozen=True)
class Skeleton:
    """One KeyPointLabels control: its instance rectangle control, its labels the face landmarks predict, and
    the rest (the learned skeleton, in config order)."""

    control: Control
    rect: Control | None
    faces: dict[str, tuple[int, ...]]
    learned: tuple[str, ...]

    def face_box_label(self) -> str | None:
        """The rectangle label a face box gets: one that stands for a face, else the only one."""
        if self.rect is None:
            return None
        named = [lb for lb in self.rect.labels if is_face_label(lb, self.rect.synonyms(lb))]
        return named[0] if named else self.rect.labels[0] if len(self.rect.labels) == 1 else None


@lru_cache(maxsize=64)
def skeletons(label_config: str) -> tuple[Skeleton, ...]:
    found = [c for c in find_controls(label_config, ("keypointlabels",), ("image",), backend="keypoints")
             if c.attrs.get("smart", "").lower() != "true"]
    if not found:
        raise UnsupportedConfig("keypoints needs a <KeyPointLabels> on an <Image> that is not a smart tool "
                                '(smart="true" clicks are prompts for the segmentation backend)')
    try:
        rects = find_controls(label_config, ("rectanglelabels",), ("image",))
    except UnsupportedConfig:
        rects = []
    out = []
    for c in found:
        rect = next((r for r in rects if r.to_name == c.to_name and r.attrs.get("smart", "").lower() != "true"),
                    None)
        faces = landmark_map(c.labels, {lb: c.synonyms(lb) for lb in c.labels})
        out.append(Skeleton(c, rect, faces, tuple(lb for lb in c.labels if lb not in faces)))
    return tuple(out)


def score_threshold(control: Control, params: dict) -> float | None:
    """The least instance score shown: the tag's `model_score_threshold`, else the project's, else None (each
    model's default)."""
    tag = control.attrs.get("model_score_threshold")
    return THRESHOLD.read({THRESHOLD.name: tag}) if tag else THRESHOLD.read(params)
