"""Label Studio smart-tool contexts to SAM prompts, and prompts sampled from masks."""
from __future__ import annotations

import numpy as np
import pytest

from segmentation.prompts import mask_box, mask_prompts, parse_context

W, H = 640, 480


def keypoint(x: float, y: float, positive: bool | None = True, label: str = "Cat", ow: int = W, oh: int = H) -> dict:
    item = {"id": "k1", "from_name": "tag", "to_name": "image", "type": "keypointlabels", "origin": "manual",
            "original_width": ow, "original_height": oh, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": 0.15, "keypointlabels": [label]}}
    if positive is not None:
        item["is_positive"] = positive
    return item


def rectangle(x: float, y: float, w: float, h: float, rotation: float = 0, label: str = "Dog") -> dict:
    return {"id": "r1", "from_name": "rect", "to_name": "image", "type": "rectanglelabels",
            "original_width": W, "original_height": H,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]}}


def test_keypoints_to_pixels():
    p = parse_context({"result": [keypoint(50, 25), keypoint(10, 90, positive=False, label="Bg"),
                                  keypoint(75, 50, positive=None)]}, W, H)
    np.testing.assert_allclose(p.points, [[320, 120], [64, 432], [480, 240]])
    assert p.point_labels.tolist() == [1, 0, 1]  # no is_positive: a plain click, positive
    assert p.box is None and p.label == "Cat" and not p.size_mismatch


def test_label_from_first_positive():
    p = parse_context({"result": [keypoint(10, 10, positive=False, label="Bg"), keypoint(50, 50, label="Car")]}, W, H)
    assert p.label == "Car"


def test_rectangle_to_box():
    p = parse_context({"result": [rectangle(10, 20, 50, 25)]}, W, H)
    np.testing.assert_allclose(p.box, [64, 96, 384, 216])
    assert len(p.points) == 0 and p.point_labels.shape == (0,) and p.label == "Dog"
    both = parse_context({"result": [rectangle(10, 20, 50, 25), keypoint(20, 30, label="Cat")]}, W, H)
    assert both.label == "Cat" and both.box is not None and len(both.points) == 1


def test_rotated_rectangle():
    # rotated 90 degrees about its top-left corner: the box now extends left of x
    p = parse_context({"result": [rectangle(50, 10, 10, 20, rotation=90)]}, W, H)
    np.testing.assert_allclose(p.box, [320 - 96, 48, 320, 48 + 64], atol=1e-3)


def test_nothing_usable():
    assert parse_context(None, W, H) is None
    assert parse_context({}, W, H) is None
    assert parse_context({"result": []}, W, H) is None
    assert parse_context({"result": [keypoint(10, 10, positive=False)]}, W, H) is None
    brush = {"type": "brushlabels", "value": {"format": "rle", "rle": [1, 2], "brushlabels": ["Cat"]}}
    assert parse_context({"result": [brush, {"type": "keypointlabels", "value": {"x": None}}, "junk"]}, W, H) is None


def test_size_mismatch_flagged():
    p = parse_context({"result": [keypoint(50, 50, ow=1280, oh=960)]}, W, H)
    assert p.size_mismatch
    np.testing.assert_allclose(p.points, [[320, 240]])  # percent: placed right on the real image anyway


def test_edge_rounding_clamped():
    p = parse_context({"result": [keypoint(100.00001, -0.00001)]}, W, H)
    np.testing.assert_allclose(p.points, [[W, 0]])


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


def test_degenerate_rectangle_ignored():
    assert parse_context({"result": [rectangle(10, 10, 0, 5)]}, W, H) is None
    p = parse_context({"result": [rectangle(10, 10, 0, 5), rectangle(20, 20, 10, 10, label="Cat")]}, W, H)
    assert p.label == "Cat"  # the first usable rectangle


def test_mask_filling_the_image_has_no_negative_points():
    points, labels, _ = mask_prompts(np.ones((10, 10), bool), np.random.default_rng(0), n_pos=1, n_neg=2)
    assert labels.tolist() == [1] and points.shape == (1, 2)
