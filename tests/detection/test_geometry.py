from __future__ import annotations

import math

import numpy as np
import pytest

from detection.geometry import simplify_polygon, yolo_box_line, yolo_polygon_line

W, H = 200, 100  # deliberately not square: percent axes have different scales


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _circle(n: int = 1000, r: float = 300.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[500 + r * np.cos(t), 400 + r * np.sin(t)]


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
