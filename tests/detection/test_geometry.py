from __future__ import annotations

import math

import numpy as np
import pytest

from detection.geometry import (
    clip_xyxy,
    outline_xyxy,
    points_to_polygon_value,
    polygon_pixels,
    rect_corners,
    region_outline,
    simplify_polygon,
    xyxy_to_rect_value,
    yolo_box_line,
    yolo_polygon_line,
)

W, H = 200, 100  # deliberately not square: percent axes have different scales


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _circle(n: int = 1000, r: float = 300.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[500 + r * np.cos(t), 400 + r * np.sin(t)]


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


def test_simplify_polygon_reduces_a_circle_and_keeps_its_area():
    circle = _circle()
    exact = math.pi * 300.0**2
    fine = simplify_polygon(circle, max_points=64, tolerance=0.002)
    assert fine is not None and 3 <= len(fine) <= 64
    assert _area(fine) == pytest.approx(exact, rel=0.02)
    default = simplify_polygon(circle)
    assert default is not None and len(default) <= 64
    assert _area(default) == pytest.approx(exact, rel=0.03)
    # the points kept are points of the outline
    assert np.abs(np.hypot(default[:, 0] - 500, default[:, 1] - 400) - 300).max() < 1e-3


def test_simplify_polygon_grows_tolerance_until_it_fits():
    circle = _circle()
    assert len(simplify_polygon(circle, max_points=64, tolerance=0.0)) > 8  # would keep far more than 8
    few = simplify_polygon(circle, max_points=8, tolerance=0.0)
    assert few is not None and 3 <= len(few) <= 8


def test_simplify_polygon_keeps_precision_far_from_the_origin():
    square = np.array([[100000.25, 200000.5], [100010.25, 200000.5], [100010.25, 200010.5], [100000.25, 200010.5]])
    out = simplify_polygon(square)
    assert {tuple(p) for p in out} == {tuple(p) for p in square}


@pytest.mark.parametrize("points", [
    np.c_[np.linspace(0, 100, 50), np.linspace(0, 50, 50)],  # a straight line
    np.array([[0.0, 0.0], [10.0, 10.0]]),
    np.array([[5.0, 5.0]] * 10),
])
def test_simplify_polygon_rejects_degenerate_outlines(points):
    assert simplify_polygon(points) is None


def test_simplify_polygon_rejects_a_sliver_it_cannot_simplify_away():
    sliver = np.array([[0.0, 0.0], [1000.0, 0.0], [500.0, 1e-4]])
    assert simplify_polygon(sliver, tolerance=0.0) is None
    assert simplify_polygon(np.array([[0.0, 0.0], [1000.0, 0.0], [500.0, 20.0]]), tolerance=0.0) is not None


def test_yolo_box_line_parses_back_to_normalized_numbers():
    line = yolo_box_line(3, (20, 10, 120, 60), W, H)
    fields = line.split()
    assert fields[0] == "3" and all(len(f.split(".")[1]) == 6 for f in fields[1:])
    assert [float(f) for f in fields[1:]] == pytest.approx([0.35, 0.35, 0.5, 0.5])


def test_yolo_box_line_clips_and_drops_empty_boxes():
    line = yolo_box_line(0, (-50, -20, 100, 50), W, H)
    assert [float(f) for f in line.split()[1:]] == pytest.approx([0.25, 0.25, 0.5, 0.5])
    assert yolo_box_line(0, (250, 10, 300, 60), W, H) is None  # wholly outside
    assert yolo_box_line(0, (50, 10, 50, 60), W, H) is None  # no width


def test_yolo_polygon_line_parses_back_and_clips():
    points = np.array([[20.0, 10.0], [120.0, 10.0], [250.0, 120.0]])
    fields = yolo_polygon_line(7, points, W, H).split()
    assert fields[0] == "7"
    coords = np.array([float(f) for f in fields[1:]]).reshape(-1, 2)
    np.testing.assert_allclose(coords, [[0.1, 0.1], [0.6, 0.1], [1.0, 1.0]])
    assert yolo_polygon_line(7, points[:2], W, H) is None


def test_sizes_must_be_positive():
    with pytest.raises(ValueError):
        rect_corners({"x": 0, "y": 0, "width": 1, "height": 1}, 0, 100)
