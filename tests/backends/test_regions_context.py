"""Label Studio smart-tool contexts to SAM prompts."""
from __future__ import annotations

import numpy as np

from backends.regions_context import parse_context

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


def test_degenerate_rectangle_ignored():
    assert parse_context({"result": [rectangle(10, 10, 0, 5)]}, W, H) is None
    p = parse_context({"result": [rectangle(10, 10, 0, 5), rectangle(20, 20, 10, 10, label="Cat")]}, W, H)
    assert p.label == "Cat"  # the first usable rectangle
