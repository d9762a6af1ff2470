"""Keypoint instances of an annotation (`<KeyPointLabels>` on `<Image>`), for the COCO keypoints and YOLO pose
exports and for agreement by OKS.

Label Studio stores every keypoint as a region of its own. An instance is a box with the keypoints drawn in it
when the config has `<RectangleLabels>` (the box a keypoint names as its `parentID`, else the smallest box that
contains it); keypoints in no box are grouped in the order they were drawn, a new instance starting when a label
comes again. The keypoint order is the config's label order; the COCO skeleton is COCO's person skeleton among the
labels that carry COCO's keypoint names (Label Studio's config has no edges), and the sigmas of OKS are COCO's when
every label is a COCO keypoint, else 0.05 each.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from keypoints.skeleton import flip_index

from .export_regions import Region, config_labels

COCO_KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle"]
# pycocotools' COCOeval keypoint sigmas, in COCO_KEYPOINTS order
COCO_SIGMAS = [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
COCO_SKELETON = [("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
                 ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
                 ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
                 ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
                 ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
                 ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder")]
CUSTOM_SIGMA = 0.05


def _coco_name(label: str) -> str:
    """"Left eye" / "left-eye" -> "left_eye"."""
    return re.sub(r"[\s\-]+", "_", label.strip().lower())


@dataclass
class Skeleton:
    """The keypoint labels in config order (then any others the annotations use) and what follows from them."""

    names: list[str]
    categories: list[str]  # the instance classes: the RectangleLabels labels, or the KeyPointLabels name
    boxes: bool  # the config has RectangleLabels: instances are boxes

    def edges(self) -> list[list[int]]:
        """COCO `skeleton`: 1-based index pairs, COCO's person edges between labels with COCO names."""
        index = {_coco_name(n): i + 1 for i, n in enumerate(self.names)}
        return [[index[a], index[b]] for a, b in COCO_SKELETON if a in index and b in index]

    def sigmas(self) -> list[float]:
        """Per-keypoint OKS sigmas: COCO's for a COCO skeleton, CUSTOM_SIGMA each for any other."""
        coco = {n: s / 10 for n, s in zip(COCO_KEYPOINTS, COCO_SIGMAS)}
        if all(_coco_name(n) in coco for n in self.names):
            return [coco[_coco_name(n)] for n in self.names]
        return [CUSTOM_SIGMA] * len(self.names)

    def flip_idx(self) -> list[int]:
        """Ultralytics' `flip_idx`: the mirror of each keypoint under a horizontal flip (left/right names)."""
        return flip_index(self.names)


def skeleton(label_config: str, extra: list[str] = ()) -> Skeleton | None:
    """The config's skeleton, None without `<KeyPointLabels>`; `extra`: labels the annotations use beyond it."""
    root = ET.fromstring(label_config)
    control = root.find(".//KeyPointLabels")
    if control is None:
        return None
    names = config_labels(label_config, ("KeyPointLabels",))
    names += [n for n in dict.fromkeys(extra) if n not in names]
    if root.find(".//RectangleLabels") is not None:
        return Skeleton(names, config_labels(label_config, ("RectangleLabels",)), True)
    return Skeleton(names, [control.get("name", "keypoints")], False)


@dataclass
class Instance:
    """One object: its box region (None: the keypoints' extent) and its keypoints by label, in pixels."""

    category: str
    box: Region | None
    points: dict[str, tuple[float, float]] = field(default_factory=dict)

    def bbox(self, w: int, h: int) -> tuple[float, float, float, float]:
        """(x, y, width, height): the box's, else the extent of the keypoints."""
        if self.box is not None:
            return self.box.bbox(w, h)
        if not self.points:
            return 0.0, 0.0, 0.0, 0.0
        xs, ys = [p[0] for p in self.points.values()], [p[1] for p in self.points.values()]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _contains(box: tuple[float, float, float, float], x: float, y: float) -> bool:
    return box[0] <= x <= box[0] + box[2] and box[1] <= y <= box[1] + box[3]


def instances(found: list[Region], sk: Skeleton, w: int, h: int) -> list[Instance]:
    """The keypoint instances among an annotation's regions (see the module's doc); boxes without keypoints are
    instances too (COCO's `num_keypoints` 0), when the config has boxes."""
    boxes = [r for r in found if r.kind == "rectangle" and sk.boxes]
    out = [Instance(b.label, b) for b in boxes]
    by_id = {b.id: inst for b, inst in zip(boxes, out) if b.id}
    loose: list[Instance] = []
    for r in (r for r in found if r.kind == "keypoint"):
        x, y = r.point(w, h)
        inst = by_id.get(r.parent)
        if inst is None:
            inside = [(b.bbox(w, h), i) for b, i in zip(boxes, out) if _contains(b.bbox(w, h), x, y)]
            inst = min(inside, key=lambda t: t[0][2] * t[0][3])[1] if inside else None
        if inst is None or r.label in inst.points:
            if not loose or r.label in loose[-1].points:
                loose.append(Instance(sk.categories[0] if not sk.boxes else r.control, None))
            inst = loose[-1]
        inst.points[r.label] = (x, y)
    return out + loose
