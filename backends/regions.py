"""Label Studio's region formats to and from pixels: percent coordinates, rotated rectangles, polygons and brush RLE.

Label Studio stores regions in percent (0..100) of the image's original width and height. A rectangle value is
{x, y, width, height, rotation}: (x, y) is the top-left corner before rotation, and the rectangle turns by
`rotation` degrees clockwise on screen (y pointing down) around that corner. A polygon value is
{points: [[x%, y%], ...]}; a brush value is {format: "rle", rle: [...]}, label-studio-sdk's RLE of an RGBA image.
Everything here converts to and from pixels of the original image (float64 arrays); the task packages only ever
see pixels.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from label_studio_sdk.converter.brush import decode_rle

from detection.geometry import clip_xyxy, polygon_area

from . import brush_rle

# the result types that carry their labels under a key of the same name
REGION_TYPES = ("rectanglelabels", "polygonlabels")


def _scale(width: int, height: int) -> np.ndarray:
    if not (width > 0 and height > 0):
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return np.array([width, height], dtype=np.float64) / 100.0


def rect_corners(value: dict, width: int, height: int) -> np.ndarray:
    """Pixel corners of a Label Studio rectangle, rotated when it has a rotation.

    Args:
        value: the region value {x, y, width, height, rotation}, in percent.
        width, height: size of the original image in pixels.

    Returns:
        (4, 2) float64: top-left, top-right, bottom-right, bottom-left of the unrotated rectangle, each turned
        around the top-left corner.
    """
    sx, sy = _scale(width, height)
    x0, y0 = float(value["x"]) * sx, float(value["y"]) * sy
    w, h = float(value["width"]) * sx, float(value["height"]) * sy
    # rotate in pixels: percent axes have different scales on a non-square image, so angles there are skewed
    theta = math.radians(float(value.get("rotation") or 0.0))
    cos, sin = math.cos(theta), math.sin(theta)
    offsets = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
    # with y down, this matrix turns clockwise on screen: +x goes to +y at 90 degrees
    rotation = np.array([[cos, -sin], [sin, cos]])
    return offsets @ rotation.T + np.array([x0, y0])


def polygon_pixels(value: dict, width: int, height: int) -> np.ndarray:
    """Pixel points of a Label Studio polygon.

    Args:
        value: the region value {points: [[x%, y%], ...]}.
        width, height: size of the original image in pixels.

    Returns:
        (N, 2) float64.
    """
    scale = _scale(width, height)
    points = np.asarray(value.get("points") or [], dtype=np.float64).reshape(-1, 2)
    return points * scale


def region_outline(item: dict, width: int, height: int) -> tuple[str, np.ndarray] | None:
    """Label and pixel outline of one Label Studio result item.

    Args:
        item: a result item of type "rectanglelabels" or "polygonlabels".
        width, height: size of the original image in pixels; the caller decides whether item["original_width"]
            can be trusted.

    Returns:
        (label, outline) with a rectangle given as its 4 corners, or None when the item is of another type,
        has no label, or is malformed or degenerate (no area).
    """
    kind = item.get("type")
    value = item.get("value")
    if kind not in REGION_TYPES or not isinstance(value, dict):
        return None
    labels = value.get(kind)
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str) or not labels[0]:
        return None
    try:
        if kind == "rectanglelabels":
            outline = rect_corners(value, width, height)
        else:
            outline = polygon_pixels(value, width, height)
    except (KeyError, TypeError, ValueError):
        return None  # missing or non-numeric coordinates: skip the region, not the whole task
    # collinear points leave rounding noise, not exactly zero: compare with the image's area
    if len(outline) < 3 or not np.isfinite(outline).all() or polygon_area(outline) <= 1e-9 * width * height:
        return None
    return labels[0], outline


def xyxy_to_rect_value(xyxy: Sequence[float], width: int, height: int) -> dict:
    """A Label Studio rectangle value for a pixel box.

    Args:
        xyxy: (x1, y1, x2, y2) in pixels; parts outside the image are cut off.
        width, height: size of the original image in pixels.

    Returns:
        {x, y, width, height, rotation: 0} in percent, within [0, 100].
    """
    x1, y1, x2, y2 = clip_xyxy(xyxy, width, height)
    x, y = 100.0 * x1 / width, 100.0 * y1 / height
    w, h = 100.0 * (x2 - x1) / width, 100.0 * (y2 - y1) / height
    return {"x": x, "y": y, "width": min(w, 100.0 - x), "height": min(h, 100.0 - y), "rotation": 0}


def points_to_polygon_value(points_px: np.ndarray, width: int, height: int) -> dict:
    """A Label Studio polygon value for pixel points.

    Args:
        points_px: (N, 2) points in pixels.
        width, height: size of the original image in pixels.

    Returns:
        {points: [[x%, y%], ...]} within [0, 100].
    """
    points = np.asarray(points_px, dtype=np.float64).reshape(-1, 2) / _scale(width, height)
    points = np.clip(points, 0.0, 100.0)
    return {"points": [[float(x), float(y)] for x, y in points]}


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """A (H, W) bool mask in Label Studio's brush RLE (through the faster encoder for it: `brush_rle`)."""
    return brush_rle.mask_to_rle(mask)


def rle_to_mask(rle: list[int], width: int, height: int) -> np.ndarray:
    """Label Studio's brush RLE as a (H, W) bool mask.

    Raises:
        ValueError: the RLE holds another number of pixels than the image.
    """
    flat = np.asarray(decode_rle(rle))
    if flat.size != width * height * 4:
        raise ValueError(f"the brush mask holds {flat.size // 4} pixels, the image {width}x{height}")
    return flat.reshape(height, width, 4)[:, :, 3] > 0


def region_mask(item: dict, tag: str, width: int, height: int) -> np.ndarray:
    """The pixels of an annotated brush or polygon result item of a `tag` control, as a (H, W) bool mask.

    Raises:
        ValueError: an item without a usable mask or outline.
    """
    value = item.get("value") or {}
    try:
        if tag == "brushlabels":
            return rle_to_mask(value["rle"], width, height)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"unreadable brush mask ({type(e).__name__}: {e})") from None
    found = region_outline(item, width, height)
    if found is None:
        raise ValueError("no outline")
    # imported here: the segmentation package loads PyTorch (~600 MB resident), which the callers of the other
    # conversions (the ocr and keypoints backends) never need
    from segmentation.masks import polygon_mask

    return polygon_mask(found[1], width, height)
