"""Masks and outlines in pixels: a polygon filled into a mask, and a mask's outline as a simplified polygon."""
from __future__ import annotations

import cv2
import numpy as np

from detection.geometry import simplify_polygon


def polygon_mask(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """A (height, width) bool mask of the pixels inside a polygon.

    Args:
        points: (N, 2) outline in pixels, rounded to whole pixels.
    """
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


def mask_outline(mask: np.ndarray) -> np.ndarray | None:
    """The outline of a mask's largest part, in pixels, simplified; None for an empty mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    return simplify_polygon(largest)
