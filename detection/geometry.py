"""Pixel geometry of detected and annotated objects: boxes clipped to the image, outline bounds, polygon
simplification and area, and YOLO label lines. Pixels of the original image throughout, float64 arrays; Label
Studio's percent formats are `backends/regions.py`'s business.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def _check_size(width: int, height: int) -> None:
    if not (width > 0 and height > 0):
        raise ValueError(f"image size must be positive, got {width}x{height}")


def polygon_area(points: np.ndarray) -> float:
    """Area of a polygon (shoelace formula), any orientation."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def clip_xyxy(xyxy: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A box clipped to the image, with its corners put in order.

    Args:
        xyxy: (x1, y1, x2, y2) in pixels.
        width, height: size of the image in pixels.

    Returns:
        (x1, y1, x2, y2) with 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height.
    """
    _check_size(width, height)
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
    y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
    return x1, y1, x2, y2


def outline_xyxy(outline: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Axis-aligned bounds of an outline, clipped to the image.

    Args:
        outline: (N, 2) points in pixels.
        width, height: size of the image in pixels.

    Returns:
        (x1, y1, x2, y2) in pixels.
    """
    points = np.asarray(outline, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        raise ValueError("an empty outline has no bounds")
    lo, hi = points.min(axis=0), points.max(axis=0)
    return clip_xyxy((lo[0], lo[1], hi[0], hi[1]), width, height)


def simplify_polygon(points_px: np.ndarray, max_points: int = 64, tolerance: float = 0.005) -> np.ndarray | None:
    """Fewer points for a polygon outline, by Douglas-Peucker.

    Args:
        points_px: (N, 2) outline in pixels, closed implicitly.
        max_points: the most points to keep; the tolerance grows until the outline fits.
        tolerance: the largest distance of the outline from the original, as a fraction of its perimeter.

    Returns:
        (M, 2) float64 with 3 <= M <= max_points, or None when the outline has no area.
    """
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")
    points = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3 or not np.isfinite(points).all():
        return None
    # OpenCV wants float32: subtract the corner first so large pixel coordinates keep their precision
    origin = points.min(axis=0)
    contour = (points - origin).astype(np.float32).reshape(-1, 1, 2)
    perimeter = cv2.arcLength(contour, True)
    if perimeter <= 0.0:
        return None
    epsilon = max(tolerance, 0.0) * perimeter
    approx = cv2.approxPolyDP(contour, epsilon, True)
    while len(approx) > max_points:
        epsilon = max(epsilon * 1.5, 1e-3 * perimeter)
        approx = cv2.approxPolyDP(contour, epsilon, True)
    if len(approx) < 3:
        return None
    result = approx.reshape(-1, 2).astype(np.float64) + origin
    # a sliver (all points nearly on one line) has an area tiny next to its perimeter squared
    if polygon_area(result) <= 1e-6 * perimeter**2:
        return None
    return result


def _normalized(values: Sequence[float]) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def yolo_box_line(cls_index: int, xyxy: Sequence[float], width: int, height: int) -> str | None:
    """A YOLO detection label line for a pixel box.

    Args:
        cls_index: the class's index in the data set's names.
        xyxy: (x1, y1, x2, y2) in pixels; parts outside the image are cut off.
        width, height: size of the image in pixels.

    Returns:
        "c xc yc w h" normalized to 0..1 with 6 decimals, or None when nothing of the box is in the image.
    """
    x1, y1, x2, y2 = clip_xyxy(xyxy, width, height)
    w, h = (x2 - x1) / width, (y2 - y1) / height
    # a box that rounds to zero size would be a zero-size label for YOLO
    if round(w, 6) <= 0.0 or round(h, 6) <= 0.0:
        return None
    xc, yc = (x1 + x2) / 2.0 / width, (y1 + y2) / 2.0 / height
    return f"{int(cls_index)} {_normalized((xc, yc, w, h))}"


def yolo_polygon_line(cls_index: int, points_px: np.ndarray, width: int, height: int) -> str | None:
    """A YOLO segmentation label line for a pixel polygon.

    Args:
        cls_index: the class's index in the data set's names.
        points_px: (N, 2) outline in pixels; points outside the image are moved onto its edge.
        width, height: size of the image in pixels.

    Returns:
        "c x1 y1 x2 y2 ..." normalized to 0..1 with 6 decimals, or None with fewer than 3 points or no area.
    """
    _check_size(width, height)
    points = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3 or not np.isfinite(points).all():
        return None
    points = np.clip(points / np.array([width, height], dtype=np.float64), 0.0, 1.0)
    if polygon_area(points) <= 0.0:  # all points on one line (or all clipped onto one edge): no object left
        return None
    return f"{int(cls_index)} {_normalized(points.ravel())}"
