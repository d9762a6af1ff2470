"""Prompts sampled from masks."""
from __future__ import annotations

import numpy as np
import pytest

from segmentation.prompts import mask_box, mask_prompts


def test_mask_prompts():
    mask = np.zeros((100, 200), bool)
    mask[20:60, 50:150] = True
    rng = np.random.default_rng(0)
    points, labels, box = mask_prompts(mask, rng, n_pos=3, n_neg=2, box_jitter=0.1)
    assert labels.tolist() == [1, 1, 1, 0, 0]
    xs, ys = points[:, 0].astype(int), points[:, 1].astype(int)
    assert mask[ys[:3], xs[:3]].all() and not mask[ys[3:], xs[3:]].any()
    assert np.abs(box - mask_box(mask)).max() <= 20  # jitter is capped
    assert (box[[0, 1]] >= 0).all() and box[2] <= 200 and box[3] <= 100
    again = mask_prompts(mask, np.random.default_rng(0), n_pos=3, n_neg=2, box_jitter=0.1)
    np.testing.assert_array_equal(again[0], points)  # seeded: repeatable
    only_box = mask_prompts(mask, rng, n_pos=0, n_neg=0)
    assert only_box[0].shape == (0, 2) and only_box[2] is not None
    assert mask_prompts(mask, rng, n_pos=1, box_jitter=None)[2] is None
    np.testing.assert_array_equal(mask_box(mask), [50, 20, 150, 60])
    with pytest.raises(ValueError, match="empty"):
        mask_prompts(np.zeros((5, 5), bool), rng)


def test_mask_filling_the_image_has_no_negative_points():
    points, labels, _ = mask_prompts(np.ones((10, 10), bool), np.random.default_rng(0), n_pos=1, n_neg=2)
    assert labels.tolist() == [1] and points.shape == (1, 2)
