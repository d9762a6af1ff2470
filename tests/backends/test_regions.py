"""Label Studio's region values to and from pixels: rotated rectangles, polygons, result items, clipping."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backends.regions import (mask_to_rle, points_to_polygon_value, polygon_pixels, rect_corners, region_outline,
                              rle_to_mask, xyxy_to_rect_value)
from detection.geometry import clip_xyxy, outline_xyxy

W, H = 200, 100  # deliberately not square: percent axes have different scales


def test_unrotated_rect_round_trips_through_label_studio_value():
    value = xyxy_to_rect_value((20, 10, 120, 60), W, H)
    assert value == pytest.approx({"x": 10.0, "y": 10.0, "width": 50.0, "height": 50.0, "rotation": 0})
    corners = rect_corners(value, W, H)
    assert corners.dtype == np.float64
    np.testing.assert_allclose(corners, [[20, 10], [120, 10], [120, 60], [20, 60]], atol=1e-9)
    assert outline_xyxy(corners, W, H) == pytest.approx((20, 10, 120, 60))


def test_rect_rotated_90_degrees_clockwise_in_pixels():
    # 25% x 30% of 200x100 is 50x30 px, its top-left corner at (100, 20) px
    value = {"x": 50, "y": 20, "width": 25, "height": 30, "rotation": 90}
    corners = rect_corners(value, W, H)
    # clockwise on screen with y down: the top edge now points down, the left edge points left
    np.testing.assert_allclose(corners, [[100, 20], [100, 70], [70, 70], [70, 20]], atol=1e-9)


def test_rect_rotated_45_degrees_bounds():
    # 40x40 px square at (100, 50) px on a 400x200 image
    value = {"x": 25, "y": 25, "width": 10, "height": 20, "rotation": 45}
    corners = rect_corners(value, 400, 200)
    d = 40 / math.sqrt(2)
    np.testing.assert_allclose(corners, [[100, 50], [100 + d, 50 + d], [100, 50 + 2 * d], [100 - d, 50 + d]], atol=1e-9)
    assert outline_xyxy(corners, 400, 200) == pytest.approx((100 - d, 50, 100 + d, 50 + 2 * d))
    # the same square near the bottom edge is cut at the image
    low = rect_corners({**value, "y": 80}, 400, 200)
    assert outline_xyxy(low, 400, 200) == pytest.approx((100 - d, 160, 100 + d, 200))


def test_region_outline_reads_rectangles_and_polygons():
    rect = {"type": "rectanglelabels", "original_width": 999, "original_height": 999,
            "value": {"x": 10, "y": 10, "width": 50, "height": 50, "rotation": 0, "rectanglelabels": ["cat"]}}
    label, outline = region_outline(rect, W, H)
    assert label == "cat"
    # the arguments decide the size, not original_width/original_height
    np.testing.assert_allclose(outline, [[20, 10], [120, 10], [120, 60], [20, 60]])

    poly = {"type": "polygonlabels", "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["dog"]}}
    label, outline = region_outline(poly, W, H)
    assert label == "dog"
    np.testing.assert_allclose(outline, [[0, 0], [100, 0], [100, 50]])


@pytest.mark.parametrize("item", [
    {"type": "choices", "value": {"choices": ["cat"]}},
    {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": []}},
    {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 0, "height": 5, "rectanglelabels": ["cat"]}},
    {"type": "rectanglelabels", "value": {"y": 1, "width": 5, "height": 5, "rectanglelabels": ["cat"]}},
    {"type": "rectanglelabels", "value": {"x": "a", "y": 1, "width": 5, "height": 5, "rectanglelabels": ["cat"]}},
    {"type": "polygonlabels", "value": {"points": [[0, 0], [50, 50]], "polygonlabels": ["cat"]}},
    {"type": "polygonlabels", "value": {"points": [[0, 0], [25, 25], [50, 50]], "polygonlabels": ["cat"]}},
    {"type": "polygonlabels", "value": {"points": [[0, 0], [50, 0], [50, 50]]}},
])
def test_region_outline_skips_other_unlabelled_and_degenerate_items(item):
    assert region_outline(item, W, H) is None


def test_polygon_percent_pixel_round_trip_and_clipping():
    points = np.array([[10.5, 20.25], [150.0, 5.0], [199.0, 99.0], [3.0, 80.0]])
    value = points_to_polygon_value(points, W, H)
    assert value["points"][0] == pytest.approx([5.25, 20.25])
    assert all(isinstance(c, float) for p in value["points"] for c in p)
    np.testing.assert_allclose(polygon_pixels(value, W, H), points, atol=1e-9)

    outside = points_to_polygon_value(np.array([[-10.0, 50.0], [250.0, -5.0], [100.0, 150.0]]), W, H)
    assert outside["points"] == [[0.0, 50.0], [100.0, 0.0], [50.0, 100.0]]


def test_boxes_sticking_out_are_clipped():
    assert clip_xyxy((-10, -5, 250, 50), W, H) == (0.0, 0.0, 200.0, 50.0)
    assert clip_xyxy((120, 60, 20, 10), W, H) == (20.0, 10.0, 120.0, 60.0)  # corners put in order
    assert xyxy_to_rect_value((-10, -5, 250, 50), W, H) == pytest.approx(
        {"x": 0, "y": 0, "width": 100, "height": 50, "rotation": 0})
    value = xyxy_to_rect_value((150, 80, 400, 300), W, H)
    assert value["x"] + value["width"] <= 100 and value["y"] + value["height"] <= 100
    assert outline_xyxy(np.array([[-5.0, -5.0], [300.0, 20.0], [50.0, 500.0]]), W, H) == (0.0, 0.0, 200.0, 100.0)



def test_sizes_must_be_positive():
    with pytest.raises(ValueError):
        rect_corners({"x": 0, "y": 0, "width": 1, "height": 1}, 0, 100)


def test_rle_round_trip_through_label_studios_decoder():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) > 0.6
    assert (rle_to_mask(mask_to_rle(mask), 53, 37) == mask).all()
    with pytest.raises(ValueError, match="53x36"):
        rle_to_mask(mask_to_rle(mask), 53, 36)
