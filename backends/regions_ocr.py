"""Label Studio's OCR regions (`<Image>` + `<Rectangle>`/`<Polygon>` or their `...Labels` forms, `<Labels>`,
`<TextArea perRegion="true">`) to and from text lines in pixels.

One text line is one region: a geometry item (a rotated rectangle {x, y, width, height, rotation} or a polygon
{points}, in percent), the label in a `labels` item when the config has a separate `<Labels>` (else inside the
`...Labels` geometry), and the text in a `textarea` item; all of them share one id, which is what makes them one
region in Label Studio. Each carries the line's confidence as its score.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .exceptions import UnsupportedConfig
from .labels import Control, find_controls
from .regions import points_to_polygon_value, polygon_pixels, rect_corners

SHAPES = {"rectangle": "rectangle", "rectanglelabels": "rectangle", "polygon": "polygon",
          "polygonlabels": "polygon"}
_TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class OcrLayout:
    """The controls of an OCR config that the regions go into."""

    shape: Control  # Rectangle, Polygon, RectangleLabels or PolygonLabels
    textarea: Control
    labels: Control | None  # a separate <Labels> on the image
    label: str | None  # the label written on each line

    @property
    def value_key(self) -> str:
        return self.textarea.value_key

    @property
    def kind(self) -> str:
        """"rectangle" or "polygon"."""
        return SHAPES[self.shape.tag]


def _text_label(control: Control | None) -> str | None:
    """The label for printed text lines: one named or `predicted_values` "text", else the first."""
    if control is None or not control.labels:
        return None
    for label in control.labels:
        if label.lower() == "text" or "text" in [s.lower() for s in control.synonyms(label)]:
            return label
    return control.labels[0]


def ocr_layout(label_config: str, shape: str | None = None) -> OcrLayout:
    """The OCR controls of a config; `shape` ("rectangle" or "polygon") picks among several geometry controls,
    else the config's first one serves.

    Raises:
        UnsupportedConfig: saying what is missing.
    """
    found = find_controls(label_config, ("textarea", *SHAPES, "labels"), ("image",), backend="ocr")
    areas = [c for c in found if c.tag == "textarea" and c.attrs.get("perRegion", "").lower() in _TRUE]
    if not areas:
        raise UnsupportedConfig('ocr needs a <TextArea perRegion="true"> on the <Image> for the text of each region')
    area = areas[0]
    shapes = [c for c in found if c.tag in SHAPES and c.to_name == area.to_name]
    if shape is not None:
        shapes = [c for c in shapes if SHAPES[c.tag] == shape] or shapes
    if not shapes:
        raise UnsupportedConfig(f"ocr needs a <Rectangle>, <Polygon>, <RectangleLabels> or <PolygonLabels> on "
                                f"<Image name={area.to_name!r}> to draw the text lines")
    geometry = shapes[0]
    if geometry.tag.endswith("labels"):
        if not geometry.labels:
            raise UnsupportedConfig(f"<{geometry.tag} name={geometry.name!r}> has no <Label> entries")
        return OcrLayout(geometry, area, None, _text_label(geometry))
    labels = next((c for c in found if c.tag == "labels" and c.to_name == area.to_name and c.labels), None)
    return OcrLayout(geometry, area, labels, _text_label(labels))


def quad_to_rect_value(points: np.ndarray, width: int, height: int) -> dict:
    """A Label Studio rotated rectangle for a line's 4 corners in pixels (top-left, top-right, bottom-right,
    bottom-left as read): the same centre, the mean side lengths, turned like its top edge (`rect_corners`
    inverted)."""
    p = np.asarray(points, dtype=np.float64).reshape(4, 2)
    top, left = (p[1] - p[0] + p[2] - p[3]) / 2, (p[3] - p[0] + p[2] - p[1]) / 2
    w, h = float(np.hypot(*top)), float(np.hypot(*left))
    theta = math.atan2(top[1], top[0])  # y down: positive turns clockwise on screen, as Label Studio's rotation
    cos, sin = math.cos(theta), math.sin(theta)
    origin = p.mean(axis=0) - np.array([[cos, -sin], [sin, cos]]) @ np.array([w / 2, h / 2])
    rotation = math.degrees(theta) % 360.0
    return {"x": 100.0 * origin[0] / width, "y": 100.0 * origin[1] / height, "width": 100.0 * w / width,
            "height": 100.0 * h / height, "rotation": 0.0 if abs(rotation - 360.0) < 1e-9 else rotation}


class OcrRegions:
    """Writes text lines as regions of one layout, and reads an annotation's regions back."""

    def __init__(self, layout: OcrLayout):
        self.layout = layout

    def geometry(self, points: np.ndarray, width: int, height: int) -> dict:
        if self.layout.kind == "rectangle":
            return quad_to_rect_value(points, width, height)
        return {**points_to_polygon_value(points, width, height), "closed": True}

    def predict_regions(self, lines: Sequence, width: int, height: int) -> list[dict]:
        """The result items of `lines` (each with `points` in pixels, `text`, `confidence`) on a width x height
        image."""
        lay, items = self.layout, []
        for line in lines:
            rid, score = uuid.uuid4().hex[:10], round(float(line.confidence), 4)
            value = self.geometry(line.points, width, height)
            common = {"id": rid, "to_name": lay.textarea.to_name, "original_width": width,
                      "original_height": height, "image_rotation": 0, "score": score}
            shape = {**value, lay.shape.tag: [lay.label]} if lay.shape.tag.endswith("labels") else value
            items.append({**common, "from_name": lay.shape.name, "type": lay.shape.tag, "value": shape})
            if lay.labels is not None and lay.label is not None:
                items.append({**common, "from_name": lay.labels.name, "type": "labels",
                              "value": {**value, "labels": [lay.label]}})
            items.append({**common, "from_name": lay.textarea.name, "type": "textarea",
                          "value": {**value, "text": [line.text]}})
        return items

    def read_regions(self, result: list[dict], width: int, height: int) -> list[tuple[np.ndarray, str]]:
        """(outline in pixels, text) of each region of an annotation that has a text in this layout's TextArea and
        a shape: the TextArea item's own geometry (Label Studio writes the region's into it), else that of the
        items sharing its id. Several texts of one region are joined by a space."""
        items = [i for i in result if isinstance(i, dict) and isinstance(i.get("value"), dict)]
        shapes: dict[str, np.ndarray] = {}
        for item in items:
            outline = _outline(item["value"], width, height)
            if outline is not None and item.get("id") is not None:
                shapes.setdefault(str(item["id"]), outline)
        out = []
        for item in items:
            if item.get("from_name") != self.layout.textarea.name or item.get("type") != "textarea":
                continue
            said = [t.strip() for t in item["value"].get("text") or [] if isinstance(t, str) and t.strip()]
            outline = _outline(item["value"], width, height)
            if outline is None and item.get("id") is not None:
                outline = shapes.get(str(item["id"]))
            if said and outline is not None:
                out.append((outline, " ".join(said)))
        return out


def _outline(value: dict, width: int, height: int) -> np.ndarray | None:
    """The pixel outline of a region value (polygon points or a rotated rectangle), None when it has none."""
    try:
        if value.get("points"):
            outline = polygon_pixels(value, width, height)
        elif all(k in value for k in ("x", "y", "width", "height")):
            outline = rect_corners(value, width, height)
        else:
            return None
    except (TypeError, ValueError):
        return None
    return outline if len(outline) >= 3 and np.isfinite(outline).all() else None
