"""Agreement between annotators (`agreement.py`): by IoU for boxes, polygons and masks, OKS for keypoints, word
and character error rates for transcripts and OCR lines, set overlap for choices; never equality of the JSON."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle

from scripts.labelloop_sync.agreement import task_agreement

W, H = 200, 150


def _ann(*regions: dict) -> dict:
    return {"result": list(regions)}


def _choice(*labels: str) -> dict:
    return _ann({"from_name": "t", "to_name": "x", "type": "choices", "value": {"choices": list(labels)}})


def test_choices_agree_by_set_overlap():
    assert task_agreement([_choice("A")]) is None
    assert task_agreement([_choice("A"), _choice("A")]) == 1.0
    assert task_agreement([_choice("A"), _choice("B")]) == 0.0
    assert task_agreement([_choice("A"), _choice("A"), _choice("B")]) == pytest.approx(1 / 3)
    assert task_agreement([_choice("A", "B"), _choice("B", "A")]) == 1.0  # order is no disagreement
    assert task_agreement([_choice("A", "B"), _choice("A")]) == 0.5
    tax = lambda *paths: _ann({"from_name": "tx", "type": "taxonomy", "value": {"taxonomy": list(paths)}})  # noqa
    assert task_agreement([tax(["Animal", "Dog"], ["Car"]), tax(["Car"], ["Animal", "Dog"])]) == 1.0
    assert task_agreement([tax(["Animal", "Dog"]), tax(["Animal", "Cat"])]) == 0.0


def _box(x, label="car", y=10, region_id=None):
    r = {"from_name": "b", "to_name": "i", "type": "rectanglelabels",
         "value": {"x": x, "y": y, "width": 20, "height": 20, "rectanglelabels": [label]}}
    return {**r, "id": region_id} if region_id else r


def test_boxes_agree_by_iou_matched_one_to_one():
    assert task_agreement([_ann(_box(10), _box(50)), _ann(_box(11), _box(51))]) == 1.0  # IoU 0.9: same boxes
    assert task_agreement([_ann(_box(10), _box(50)), _ann(_box(51), _box(11))]) == 1.0  # in any order
    assert task_agreement([_ann(_box(10), _box(50)), _ann(_box(10))]) == pytest.approx(2 / 3)
    assert task_agreement([_ann(_box(10)), _ann(_box(10, "bus"))]) == 0.0
    assert task_agreement([_ann(_box(10)), _ann(_box(25))]) == 0.0  # IoU 1/7: another box
    # a box drawn in the gap between two others is paired with neither
    assert task_agreement([_ann(_box(10), _box(30)), _ann(_box(20))]) == 0.0


def _polygon(points, label="road"):
    return {"from_name": "p", "to_name": "i", "type": "polygonlabels", "original_width": W, "original_height": H,
            "value": {"points": points, "polygonlabels": [label]}}


def test_polygons_agree_by_their_area_not_their_boxes():
    upper, lower = [[0, 0], [50, 0], [0, 50]], [[50, 50], [50, 0], [0, 50]]  # one bounding box, no common area
    assert task_agreement([_ann(_polygon(upper)), _ann(_polygon(lower))]) == 0.0
    assert task_agreement([_ann(_polygon(upper)), _ann(_polygon(upper[1:] + upper[:1]))]) == 1.0


def _brush(mask: np.ndarray, label="cat") -> dict:
    return {"from_name": "tag", "to_name": "i", "type": "brushlabels", "original_width": W, "original_height": H,
            "value": {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]}}


def _disc(cx, cy, r=30) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask


def test_near_identical_masks_agree():
    a, b = _disc(60, 60), _disc(62, 61)  # a brush stroke or two apart: their RLEs differ
    assert _brush(a)["value"]["rle"] != _brush(b)["value"]["rle"]
    assert task_agreement([_ann(_brush(a)), _ann(_brush(b))]) == 1.0
    assert task_agreement([_ann(_brush(a)), _ann(_brush(b, "dog"))]) == 0.0
    assert task_agreement([_ann(_brush(a)), _ann(_brush(_disc(140, 80)))]) == 0.0
    both = [_ann(_brush(a), _brush(_disc(150, 100, 20), "dog")), _ann(_brush(_disc(151, 100, 20), "dog"), _brush(b))]
    assert task_agreement(both) == 1.0


def _kp(label, x, y, region_id=None, parent=None, w=W, h=H):
    r = {"from_name": "kp", "to_name": "i", "type": "keypointlabels", "original_width": w, "original_height": h,
         "value": {"x": x, "y": y, "width": 0.5, "keypointlabels": [label]}}
    return {**r, **({"id": region_id} if region_id else {}), **({"parentID": parent} if parent else {})}


FACE = {"left_eye": (40, 40), "right_eye": (60, 40), "nose": (50, 55), "mouth": (50, 70)}


def _face(dx=0.0, dy=0.0, skip=()):
    return [_kp(n, x + dx, y + dy) for n, (x, y) in FACE.items() if n not in skip]


def test_keypoints_agree_by_oks():
    assert task_agreement([_ann(*_face()), _ann(*_face())]) == 1.0
    near = task_agreement([_ann(*_face()), _ann(*_face(0.5, 0.3))])
    assert 0.9 < near < 1.0
    far = task_agreement([_ann(*_face()), _ann(*_face(15, 10))])
    assert far < 0.2
    missing = task_agreement([_ann(*_face()), _ann(*_face(skip=("mouth",)))])
    assert missing == pytest.approx(0.75)  # 3 of the 4 keypoints either labeled, each exactly


def test_keypoint_instances_are_paired_whatever_their_order():
    def person(x0, tag):  # a box and its keypoints (COCO names: COCO's sigmas)
        box = {"id": f"box{tag}", "from_name": "b", "to_name": "i", "type": "rectanglelabels",
               "original_width": W, "original_height": H,
               "value": {"x": x0, "y": 10, "width": 30, "height": 80, "rectanglelabels": ["person"]}}
        return [box, _kp("nose", x0 + 15, 20), _kp("left_eye", x0 + 12, 17), _kp("right_eye", x0 + 18, 17)]

    a = _ann(*person(5, 1), *person(55, 2))
    b = _ann(*person(55, 3), *person(5, 4))
    assert task_agreement([a, b]) == 1.0
    # keypoints belong to the box they are in, whatever the order they were drawn in
    c = _ann(_kp("nose", 70, 20), *person(5, 1), *person(55, 2)[:1], *person(55, 2)[2:])
    assert task_agreement([a, c]) == 1.0
    moved = _ann(_kp("nose", 72, 21), *person(5, 1), *person(55, 2)[:1], *person(55, 2)[2:])
    assert 0.5 < task_agreement([a, moved]) < 1.0


def _text(s: str) -> dict:
    return _ann({"from_name": "tr", "to_name": "audio", "type": "textarea", "value": {"text": [s]}})


def test_transcripts_agree_by_word_error_rate():
    assert task_agreement([_text("Hello  world"), _text("hello world")]) == 1.0
    assert task_agreement([_text("Printing, in the only sense"), _text("printing in the only sense")]) == 1.0
    assert task_agreement([_text("hello world"), _text("hello word")]) == 0.5
    assert task_agreement([_text("the cat sat on the mat"), _text("the cat sat on a mat")]) == pytest.approx(5 / 6)
    assert task_agreement([_text("one"), _text("two three four")]) == 0.0  # never below 0
    assert task_agreement([_text(""), _text("")]) == 1.0


def _line(region_id: str, x: float, text: str, label="Text") -> list[dict]:
    geometry = {"x": x, "y": 20, "width": 30, "height": 8, "rotation": 0}
    common = {"id": region_id, "to_name": "image", "original_width": W, "original_height": H}
    return [{**common, "from_name": "bbox", "type": "rectangle", "value": dict(geometry)},
            {**common, "from_name": "label", "type": "labels", "value": {**geometry, "labels": [label]}},
            {**common, "from_name": "transcription", "type": "textarea", "value": {**geometry, "text": [text]}}]


def test_ocr_lines_agree_by_character_error_rate():
    a = _ann(*_line("a1", 10, "Hello"), *_line("a2", 50, "World"))
    assert task_agreement([a, _ann(*_line("b2", 51, "World"), *_line("b1", 10, "Hello"))]) == 1.0
    one_typo = task_agreement([a, _ann(*_line("b1", 10, "Hallo"), *_line("b2", 50, "World"))])
    assert one_typo == pytest.approx((1 + 1 + (1 + 0.8) / 2) / 3)  # boxes and labels agree; texts 1 and 1 - 1/5
    # the text of an unmatched line counts as missing
    assert task_agreement([a, _ann(*_line("b1", 10, "Hello"))]) == pytest.approx(2 / 3)


def test_ratings_agree_when_equal():
    rating = lambda v: _ann({"from_name": "r", "type": "rating", "value": {"rating": v}})  # noqa: E731
    assert task_agreement([rating(3), rating(3)]) == 1.0 and task_agreement([rating(3), rating(4)]) == 0.0
