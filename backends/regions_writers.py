"""One writer per Label Studio control tag that models fill, in the style of Label Studio's official ML backend
examples (`control_models/`): `is_control_matched` picks the class for a control, `create` reads the tag's model
settings (`model_path`, `model_score_threshold`, falling back to the project's params), and `predict_regions`
turns objects found in pixels into the tag's result items.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from detection.geometry import outline_xyxy
from segmentation.masks import mask_outline, polygon_mask, simplify_outline

from .exceptions import UnsupportedConfig
from .labels import Control
from .regions import mask_to_rle, points_to_polygon_value, xyxy_to_rect_value

# the least annotation time for boxes, yolov8n on coco128: 44 % of drawing time saved against 28 % at 0.5
# (bench/results/effort_detection.json); masks and outlines not measured
DEFAULT_THRESHOLD = 0.1


@dataclass
class PixelRegion:
    """One object a model found, in pixels of the image: its config label, its score, and the shapes it has."""

    label: str
    score: float
    xyxy: tuple[float, float, float, float] | None = None
    polygon: np.ndarray | None = None  # (N, 2) outline
    mask: np.ndarray | None = None  # (H, W) bool


class RegionWriter:
    """Writes `PixelRegion`s as result items of one control."""

    tag: ClassVar[str]
    model_task: ClassVar[str] = "detect"  # the YOLO task whose output the tag needs

    def __init__(self, control: Control, threshold: float, model_path: str | None, threshold_set: bool = False):
        self.control = control
        self.threshold = threshold
        self.model_path = model_path
        self.threshold_set = threshold_set  # by the tag or the project: a threshold learned at training gives way

    def learned(self, threshold: float | None) -> RegionWriter:
        """Use a threshold learned from the project's annotations unless the tag or the project set one."""
        if threshold is not None and not self.threshold_set:
            self.threshold = float(threshold)
        return self

    @classmethod
    def is_control_matched(cls, control: Control) -> bool:
        return control.tag == cls.tag

    @classmethod
    def create(cls, control: Control, params: dict[str, Any] | None = None) -> RegionWriter:
        """The writer of `control`, with its model settings read from the tag, else from `params` (the threshold
        then from a version's learned one, see `learned`, then `DEFAULT_THRESHOLD`).

        Raises:
            UnsupportedConfig: a threshold that is not a number in [0, 1].
        """
        params = params or {}
        given = control.attrs.get("model_score_threshold", params.get("model_score_threshold"))
        raw = DEFAULT_THRESHOLD if given is None or given == "" else given
        try:
            threshold = float(raw)
        except (TypeError, ValueError):
            raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> model_score_threshold={raw!r} is not "
                                    "a number") from None
        if not 0.0 <= threshold <= 1.0:
            raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> model_score_threshold={raw!r} is not "
                                    "between 0 and 1")
        return cls(control, threshold, control.attrs.get("model_path") or params.get("model_path") or None,
                   threshold_set=raw is given)

    def shown(self, found: list) -> list:
        """The candidates the annotator is shown: those scored at or above the control's threshold (the model
        is run down to `detection.scoring.FLOOR`, so that the ones below can score the task)."""
        return [f for f in found if _score(f) >= self.threshold]

    def predict_regions(self, found: list[PixelRegion], width: int, height: int) -> list[dict]:
        """The result items of `found` on an image of width x height; objects without a usable shape are left
        out."""
        items = []
        for region in found:
            value = self.value(region, width, height)
            if value is None:
                continue
            items.append({"id": uuid.uuid4().hex[:10], "from_name": self.control.name,
                          "to_name": self.control.to_name, "type": self.tag, "original_width": width,
                          "original_height": height, "image_rotation": 0, "score": round(float(region.score), 4),
                          "value": {**value, self.tag: [region.label]}})
        return items

    def value(self, region: PixelRegion, width: int, height: int) -> dict | None:
        """The item's value without its label, or None when the region has nothing this tag can show."""
        raise NotImplementedError


class RectangleLabels(RegionWriter):
    tag = "rectanglelabels"

    def value(self, region: PixelRegion, width: int, height: int) -> dict | None:
        xyxy = region.xyxy
        if xyxy is None and region.polygon is not None:
            xyxy = outline_xyxy(region.polygon, width, height)
        if xyxy is None:
            return None
        value = xyxy_to_rect_value(xyxy, width, height)
        return value if value["width"] > 0 and value["height"] > 0 else None


class PolygonLabels(RegionWriter):
    tag = "polygonlabels"
    model_task = "segment"

    def value(self, region: PixelRegion, width: int, height: int) -> dict | None:
        # a mask (SAM's, refined) before the detector's own outline; either kept within a quarter pixel
        if region.mask is not None:
            points = mask_outline(region.mask)
        elif region.polygon is not None:
            points = simplify_outline(region.polygon)
        else:
            return None
        return None if points is None else {**points_to_polygon_value(points, width, height), "closed": True}


class BrushLabels(RegionWriter):
    tag = "brushlabels"
    model_task = "segment"

    def value(self, region: PixelRegion, width: int, height: int) -> dict | None:
        mask = region.mask
        if mask is None and region.polygon is not None:
            mask = polygon_mask(region.polygon, width, height)
        if mask is None or not mask.any():
            return None
        return {"format": "rle", "rle": mask_to_rle(mask)}


def _score(found: Any) -> float:
    """The score of a `PixelRegion` or of a (label, `detection.types.Detection`) pair."""
    return float(found[1].score if isinstance(found, tuple) else found.score)


WRITERS: tuple[type[RegionWriter], ...] = (RectangleLabels, PolygonLabels, BrushLabels)


def writer_for(control: Control, params: dict[str, Any] | None = None) -> RegionWriter:
    """The writer of a control, by the first writer class that matches it.

    Raises:
        UnsupportedConfig: no writer for the control's tag, or bad model settings on it.
    """
    for cls in WRITERS:
        if cls.is_control_matched(control):
            return cls.create(control, params)
    raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> cannot be predicted by this backend")
