"""Segmentation projects in `sync.py export`: brush masks and polygons as COCO (RLE and polygon segmentations)
and as YOLO segments, read back with pycocotools and with Ultralytics' own label reader."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle

from tests.scripts.export_helpers import annotation, image_file, iou, run_export

W, H = 160, 120
CONFIG = ('<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
          '<Label value="cat"/><Label value="dog"/></BrushLabels>'
          '<PolygonLabels name="poly" toName="image"><Label value="road"/></PolygonLabels></View>')


def _masks() -> dict[str, np.ndarray]:
    blob = np.zeros((H, W), np.uint8)
    cv2.ellipse(blob, (60, 50), (35, 22), 30, 0, 360, 1, -1)
    two = np.zeros((H, W), np.uint8)  # two parts: a box and a disc
    cv2.rectangle(two, (110, 10), (150, 40), 1, -1)
    cv2.circle(two, (130, 90), 18, 1, -1)
    return {"cat": blob, "dog": two}


def _brush(region_id: str, mask: np.ndarray, label: str) -> dict:
    return {"id": region_id, "from_name": "tag", "to_name": "image", "type": "brushlabels", "original_width": W,
            "original_height": H, "image_rotation": 0,
            "value": {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]}}


POLYGON = [[5.0, 80.0], [40.0, 70.0], [45.0, 95.0], [10.0, 98.0]]  # percent


def _polygon() -> dict:
    return {"id": "p1", "from_name": "poly", "to_name": "image", "type": "polygonlabels", "original_width": W,
            "original_height": H, "value": {"points": POLYGON, "polygonlabels": ["road"]}}


def _polygon_mask() -> np.ndarray:
    out = np.zeros((H, W), np.uint8)
    cv2.fillPoly(out, [np.round(np.array(POLYGON) / 100 * (W, H)).astype(np.int32)], 1)
    return out


@pytest.fixture
def tasks(tmp_path):
    masks = _masks()
    image = image_file(tmp_path / "street.png", W, H)
    result = [_brush("m1", masks["cat"], "cat"), _brush("m2", masks["dog"], "dog"), _polygon()]
    return [{"id": 1, "data": {"image": str(image)}, "annotations": [annotation(result)]}]


def test_coco_masks_are_rle_and_polygons_are_polygons(monkeypatch, tmp_path, tasks):
    from pycocotools.coco import COCO

    out = tmp_path / "coco"
    assert run_export(monkeypatch, out, CONFIG, tasks, "coco")["tasks"] == 1
    doc = json.loads((out / "annotations.json").read_text())
    coco = COCO(str(out / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "dog", "road"]
    anns = {coco.loadCats(a["category_id"])[0]["name"]: a for a in coco.loadAnns(coco.getAnnIds())}
    for label, original in _masks().items():
        ann = anns[label]
        assert isinstance(ann["segmentation"]["counts"], str) and ann["segmentation"]["size"] == [H, W]
        mask = coco.annToMask(ann)
        assert iou(mask, original) >= 0.99 and ann["area"] == original.sum()
        ys, xs = np.nonzero(original)
        assert ann["bbox"] == pytest.approx([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
    road = anns["road"]
    assert isinstance(road["segmentation"], list) and len(road["segmentation"][0]) == 8
    assert iou(coco.annToMask(road), _polygon_mask()) >= 0.9
    assert doc["images"][0]["file_name"] == "images/street.png" and (out / "images/street.png").is_file()


def test_yolo_segments_read_back_by_ultralytics(monkeypatch, tmp_path, tasks):
    import detection.runtime  # noqa: F401  (offline Ultralytics settings)
    from ultralytics.data.utils import verify_image_label

    out = tmp_path / "yolo"
    run_export(monkeypatch, out, CONFIG, tasks, "yolo")
    names = (out / "classes.txt").read_text().split()
    assert names == ["cat", "dog", "road"]
    checked = verify_image_label((str(out / "images/street.png"), str(out / "labels/street.txt"), "", False,
                                  len(names), 0, 0, False))
    _, labels, shape, segments, _, missing, found, empty, corrupt, msg = checked
    assert (found, corrupt) == (1, 0) and shape == (H, W), msg
    originals = {**_masks(), "road": _polygon_mask()}
    assert len(segments) == 3
    for cls, segment in zip(labels[:, 0].astype(int), segments):
        drawn = np.zeros((H, W), np.uint8)
        cv2.fillPoly(drawn, [np.round(segment * (W, H)).astype(np.int32)], 1)
        assert iou(drawn, originals[names[cls]]) >= 0.9, names[cls]


def test_an_image_without_regions_gets_an_empty_label_file(monkeypatch, tmp_path):
    image = image_file(tmp_path / "empty.png", W, H)
    tasks = [{"id": 2, "data": {"image": str(image)}, "annotations": [annotation([])]}]
    out = tmp_path / "yolo"
    run_export(monkeypatch, out, CONFIG, tasks, "yolo")
    assert (out / "labels/empty.txt").read_text() == ""


def test_min_agreement_keeps_near_identical_masks_and_drops_others(monkeypatch, tmp_path):
    image = image_file(tmp_path / "street.png", W, H)
    blob = _masks()["cat"]
    moved = np.roll(blob, (1, 2), axis=(0, 1))  # the same cat, drawn a pixel or two off
    elsewhere = np.roll(blob, 60, axis=1)
    tasks = [{"id": n, "data": {"image": str(image)},
              "annotations": [annotation([_brush("a", blob, "cat")], 1), annotation([_brush("b", other, "cat")], 2)]}
             for n, other in ((1, moved), (2, elsewhere))]
    out = tmp_path / "coco"
    report = run_export(monkeypatch, out, CONFIG, tasks, "coco", min_agreement=0.5)
    assert (report["tasks"], report["dropped_low_agreement"], report["mean_agreement"]) == (1, 1, 1.0)
    assert json.loads((out / "agreement.json").read_text())["per_task"] == {"1": 1.0}


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_a_mask_of_another_size_is_an_error_naming_its_task(monkeypatch, tmp_path, fmt):
    from scripts.labelloop_sync.errors import SyncError

    image = image_file(tmp_path / "street.png", W, H)
    wrong = _brush("m1", np.ones((H // 2, W), np.uint8), "cat")  # drawn on another image size
    garbage = {**_brush("m2", _masks()["cat"], "cat"),
               "value": {"format": "rle", "rle": [7, 7], "brushlabels": ["cat"]}}
    for n, region in ((3, wrong), (4, garbage)):
        tasks = [{"id": n, "data": {"image": str(image)}, "annotations": [annotation([region])]}]
        with pytest.raises(SyncError, match=f"task {n}: .*brush mask"):
            run_export(monkeypatch, tmp_path / f"{fmt}{n}", CONFIG, tasks, fmt)
