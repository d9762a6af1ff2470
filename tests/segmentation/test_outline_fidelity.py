"""Outlines written for Label Studio keep the model's shape: within a quarter pixel of it, through the percent
coordinates Label Studio stores, for the detector's outlines and for masks (the fidelity fixes of issue 16)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backends.labels import Control
from backends.regions import polygon_pixels
from backends.regions_writers import PixelRegion, writer_for
from detection.geometry import simplify_polygon
from segmentation.masks import OUTLINE_TOLERANCE_PX, mask_outline, polygon_mask, simplify_outline


def _distance_to_outline(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Each point's distance to the closed polygon `outline`."""
    contour = outline.astype(np.float32).reshape(-1, 1, 2)
    return np.array([abs(cv2.pointPolygonTest(contour, (float(x), float(y)), True)) for x, y in points])


def _blob(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A wobbly star-like outline (N, 2) in pixels: many details a coarse simplification cuts off."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    radius = 0.3 * min(width, height) * (1 + 0.25 * np.sin(7 * angles) + 0.05 * rng.standard_normal(len(angles)))
    return np.stack([width / 2 + radius * np.cos(angles), height / 2 + radius * np.sin(angles)], 1)


def _control(tag: str) -> Control:
    return Control(name="c", tag=tag, to_name="image", object_tag="image", value_key="image", labels=["Cat"])


@pytest.mark.parametrize("width,height", [(640, 480), (1920, 1080), (333, 1001)])
def test_a_polygon_round_trips_through_label_studio_within_a_quarter_pixel(width, height):
    outline = _blob(width, height)
    [item] = writer_for(_control("polygonlabels")).predict_regions([PixelRegion("Cat", 0.9, polygon=outline)],
                                                                   width, height)
    stored = polygon_pixels(item["value"], width, height)  # what Label Studio hands back, in pixels
    assert OUTLINE_TOLERANCE_PX <= 0.25
    assert _distance_to_outline(outline, stored).max() <= OUTLINE_TOLERANCE_PX + 1e-3
    assert _distance_to_outline(stored, outline).max() <= 1e-3  # its points are the model's own (float32 test)


def test_the_former_simplification_lost_more_than_a_pixel_on_the_same_outline():
    """The test above can fail: the former writer (0.5 % of the perimeter, at most 64 points) is off by pixels."""
    outline = _blob(1920, 1080)
    assert _distance_to_outline(outline, simplify_polygon(outline)).max() > 2.0


def test_mask_outline_fills_back_to_the_mask():
    mask = polygon_mask(_blob(640, 480, seed=1), 640, 480)
    outline = mask_outline(mask)
    again = polygon_mask(outline, 640, 480)
    iou = (mask & again).sum() / (mask | again).sum()
    assert iou >= 0.98  # a jagged mask: its pixel staircase needs more than 1,000 points


def test_simplify_outline_drops_only_redundant_points_and_bounds_the_count():
    square = np.array([[10, 10], [20, 10.2], [30, 10], [30, 30], [10, 30]], float)  # 0.2 px off a straight edge
    assert len(simplify_outline(square)) == 4
    assert simplify_outline(np.array([[0, 0], [5, 0], [10, 0]], float)) is None  # no area
    many = simplify_outline(_blob(4000, 4000), max_points=50)
    assert 3 <= len(many) <= 50
