"""Polygons filled into masks and masks outlined."""
from __future__ import annotations

import numpy as np

from segmentation.masks import mask_outline, polygon_mask


def test_polygon_mask_fills_the_outline():
    mask = polygon_mask(np.array([[10, 10], [30, 10], [30, 20], [10, 20]], float), 40, 30)
    assert mask.shape == (30, 40) and 190 <= mask.sum() <= 231


def test_mask_outline_of_the_largest_part():
    mask = np.zeros((30, 40), bool)
    mask[5:25, 5:20] = True  # 15 x 20
    mask[1:3, 30:32] = True  # a speck elsewhere
    outline = mask_outline(mask)
    assert outline is not None and 4 <= len(outline) <= 64
    assert outline[:, 0].min() >= 5 and outline[:, 0].max() <= 20 and outline[:, 1].max() <= 25
    assert mask_outline(np.zeros((5, 5), bool)) is None
