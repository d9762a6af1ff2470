"""The regions of one annotation as the exporters and the agreement measures read them: boxes, polygons, brush
masks and keypoints, in pixels.

Label Studio stores a region drawn with one tool and labeled, transcribed or classified with other controls as
several results that share an `id` (OCR: a `rectangle`, its `labels` and its per-region `textarea`); they are merged
here into one `Region`. Geometry is read from the value itself, whatever the result type: `rle` is a brush mask,
`points` a polygon, x/y/width/height a rectangle (rotated about its top-left corner) and x/y without a height a
keypoint. Coordinates are percent of the image; masks are Label Studio's brush RLE of the whole image.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np
from label_studio_sdk.converter.brush import decode_rle

LABEL_KEYS = ("rectanglelabels", "polygonlabels", "brushlabels", "keypointlabels", "ellipselabels", "labels")
REGION_TAGS = ("RectangleLabels", "PolygonLabels", "BrushLabels", "Labels")
SHAPES = ("rectangle", "polygon", "mask")


def config_labels(label_config: str, tags: tuple[str, ...] = REGION_TAGS) -> list[str]:
    """Label names of the `tags` controls in config order (no duplicates)."""
    names: list[str] = []
    for tag in ET.fromstring(label_config).iter():
        if tag.tag in tags:
            names += [c.get("value") for c in tag if c.tag == "Label" and c.get("value") not in names]
    return names


def geometry_kind(value: dict) -> str | None:
    """"mask", "polygon", "rectangle", "keypoint" or None (a value without a shape: choices, a transcript)."""
    if value.get("rle"):
        return "mask"
    if value.get("points"):
        return "polygon"
    if not (isinstance(value.get("x"), (int, float)) and isinstance(value.get("y"), (int, float))):
        return None
    if "height" in value:
        return "rectangle"
    # a keypoint's `width` is the size of its dot
    return "keypoint" if "width" in value or "keypointlabels" in value else None


@dataclass
class Region:
    """One region: its shape (`kind`, the value it was read from), first label, transcript and original size."""

    id: str | None
    kind: str
    value: dict
    label: str
    control: str  # the from_name of the result that carried the shape
    text: str | None = None
    parent: str | None = None  # Label Studio's parentID (a keypoint drawn inside a box)
    size: tuple[int, int] | None = None  # original_width, original_height
    labels: list[str] = field(default_factory=list)

    def corners(self, w: float, h: float) -> list[tuple[float, float]]:
        """The outline in pixels: a rectangle's 4 corners (rotation included) or a polygon's points, clipped."""
        if self.kind == "rectangle":
            return rect_corners(self.value, w, h)
        if self.kind == "polygon":
            return [(min(max(px, 0), 100) * w / 100, min(max(py, 0), 100) * h / 100) for px, py in self.value["points"]]
        raise ValueError(f"a {self.kind} has no outline")

    def point(self, w: float, h: float) -> tuple[float, float]:
        """A keypoint's position in pixels."""
        return self.value["x"] * w / 100, self.value["y"] * h / 100

    def mask(self, w: int, h: int) -> np.ndarray:
        """A brush region's pixels as an (h, w) bool array.

        Raises:
            ValueError: an unreadable RLE, or one of another number of pixels than the image.
        """
        try:
            flat = np.asarray(decode_rle(self.value["rle"]))
        except (TypeError, ValueError, IndexError) as e:
            raise ValueError(f"unreadable brush mask ({type(e).__name__})") from None
        if flat.size != w * h * 4:
            raise ValueError(f"the brush mask holds {flat.size // 4} pixels, the image {w}x{h}")
        return flat.reshape(h, w, 4)[:, :, 3] > 0

    def bbox(self, w: int, h: int) -> tuple[float, float, float, float]:
        """Axis-aligned (x, y, width, height) in pixels within the image."""
        if self.kind == "rectangle":
            return rect_pixels(self.value, w, h)
        if self.kind == "keypoint":
            x, y = self.point(w, h)
            return x, y, 0.0, 0.0
        if self.kind == "mask":
            ys, xs = np.nonzero(self.mask(w, h))
            if not len(xs):
                return 0.0, 0.0, 0.0, 0.0
            return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)
        pts = self.corners(w, h)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def rect_corners(v: dict, w: float, h: float) -> list[tuple[float, float]]:
    """The 4 corners in pixels of a Label Studio rectangle, turned by its `rotation` (degrees) about the top-left."""
    x, y = v["x"] * w / 100, v["y"] * h / 100
    bw, bh = v["width"] * w / 100, v["height"] * h / 100
    angle = math.radians(float(v.get("rotation") or 0))
    cos, sin = math.cos(angle), math.sin(angle)
    return [(x + cx * cos - cy * sin, y + cx * sin + cy * cos) for cx, cy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]


def rect_pixels(v: dict, w: float, h: float) -> tuple[float, float, float, float]:
    """Axis-aligned (x, y, w, h) in pixels of a Label Studio rectangle, rotation included, clipped to the image."""
    pts = rect_corners(v, w, h)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0 = max(0.0, min(xs)), max(0.0, min(ys))
    x1, y1 = min(float(w), max(xs)), min(float(h), max(ys))
    return x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Shoelace area of a closed outline."""
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))) / 2


def regions(result: list[dict]) -> list[Region]:
    """The regions of an annotation's result, results of one `id` (and object) merged; those without a shape left
    out. Results without an id are regions of their own."""
    merged: dict[tuple, dict] = {}
    for n, r in enumerate(result):
        v = r.get("value") if isinstance(r.get("value"), dict) else {}
        entry = merged.setdefault((r.get("id") or f"#{n}", r.get("to_name")),
                                  {"id": r.get("id"), "shape": None, "labels": [], "text": [], "parent": None,
                                   "size": None})
        kind = geometry_kind(v)
        if kind and entry["shape"] is None:
            entry["shape"] = (kind, v, str(r.get("from_name", "")))
        for key in LABEL_KEYS:
            entry["labels"] += [str(x) for x in v.get(key) or [] if str(x) not in entry["labels"]]
        if str(r.get("type", "")).lower() == "textarea":
            entry["text"] += [str(t) for t in v.get("text") or []]
        entry["parent"] = entry["parent"] or r.get("parentID")
        if r.get("original_width") and r.get("original_height"):
            entry["size"] = (int(r["original_width"]), int(r["original_height"]))
    out = []
    for e in merged.values():
        if e["shape"] is None:
            continue
        kind, v, control = e["shape"]
        out.append(Region(e["id"], kind, v, e["labels"][0] if e["labels"] else control, control,
                          "\n".join(e["text"]) if e["text"] else None, e["parent"], e["size"], e["labels"]))
    return out


def result_size(result: list[dict]) -> tuple[int, int] | None:
    """The image's (width, height) as Label Studio stored it with the results."""
    for r in result:
        if r.get("original_width") and r.get("original_height"):
            return int(r["original_width"]), int(r["original_height"])
    return None
