"""OCR projects in `sync.py export --format ocr`: one manifest row per text region (pixels, label, the region's
TextArea), and with --copy-media a crop of every line turned upright."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from scripts.labelloop_sync.export_regions import rect_corners
from tests.scripts.export_helpers import annotation, run_export

W, H = 300, 200
CONFIG = ('<View><Image name="image" value="$image"/><Labels name="label" toName="image">'
          '<Label value="Text"/><Label value="Handwriting"/></Labels><Rectangle name="bbox" toName="image"/>'
          '<Polygon name="poly" toName="image"/><TextArea name="transcription" toName="image" editable="true" '
          'perRegion="true" required="true" maxSubmissions="1" rows="5" displayMode="region-list"/></View>')
UPRIGHT = {"x": 10, "y": 10, "width": 40, "height": 15, "rotation": 0}
ROTATED = {"x": 30, "y": 45, "width": 40, "height": 12, "rotation": 30}


def _two_tone(image: np.ndarray, geometry: dict) -> None:
    """The region's left half black, its right half mid grey (in its own frame): crops show which way is up."""
    half = {**geometry, "width": geometry["width"] / 2}
    right = rect_corners(half, W, H)[1]  # the left half's top-right corner starts the right half
    rest = {**half, "x": right[0] / W * 100, "y": right[1] / H * 100}
    for g, tone in ((half, 0), (rest, 128)):
        cv2.fillPoly(image, [np.round(np.array(rect_corners(g, W, H))).astype(np.int32)], (tone, tone, tone))


def _region(region_id: str, geometry: dict, label: str, text: str, tool: str = "bbox") -> list[dict]:
    common = {"id": region_id, "to_name": "image", "original_width": W, "original_height": H}
    kind = "rectangle" if tool == "bbox" else "polygon"
    return [{**common, "from_name": tool, "type": kind, "value": dict(geometry)},
            {**common, "from_name": "label", "type": "labels", "value": {**geometry, "labels": [label]}},
            {**common, "from_name": "transcription", "type": "textarea", "value": {**geometry, "text": [text]}}]


@pytest.fixture
def tasks(tmp_path):
    image = np.full((H, W, 3), 255, np.uint8)
    _two_tone(image, UPRIGHT)
    _two_tone(image, ROTATED)
    quad = [[60, 70], [90, 80], [88, 92], [58, 82]]  # percent, a tilted line as a polygon
    path = tmp_path / "page.png"
    cv2.imwrite(str(path), image)
    result = [*_region("r1", UPRIGHT, "Text", "Hello"), *_region("r2", ROTATED, "Handwriting", "wörld 😀"),
              *_region("p1", {"points": quad}, "Text", "tilted", tool="poly")]
    return [{"id": 5, "data": {"image": str(path)}, "annotations": [annotation(result)]}], quad


def test_ocr_manifest_and_upright_line_crops(monkeypatch, tmp_path, tasks):
    tasks, quad = tasks
    out = tmp_path / "ocr"
    report = run_export(monkeypatch, out, CONFIG, tasks, "ocr")
    assert report["tasks"] == 1
    rows = [json.loads(line) for line in (out / "ocr.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["region_id"], r["label"], r["text"]) for r in rows] == [
        ("r1", "Text", "Hello"), ("r2", "Handwriting", "wörld 😀"), ("p1", "Text", "tilted")]
    assert all(r["image"] == "images/page.png" and r["ls_task_id"] == 5 for r in rows)
    assert rows[0]["bbox"] == [30, 20, 120, 30] and "points" not in rows[0]
    assert np.array(rows[1]["points"]) == pytest.approx(np.array(rect_corners(ROTATED, W, H)), abs=0.01)
    assert np.array(rows[2]["points"]) == pytest.approx(np.array(quad) / 100 * (W, H), abs=0.01)
    for row, size in zip(rows[:2], [(120, 30), (120, 24)]):
        crop = cv2.imread(str(out / row["crop"]), cv2.IMREAD_GRAYSCALE)
        assert abs(crop.shape[1] - size[0]) <= 1 and abs(crop.shape[0] - size[1]) <= 1
        inner = crop[3:-3, 3:-3]
        left, right = inner[:, : inner.shape[1] // 2 - 3], inner[:, inner.shape[1] // 2 + 3:]
        assert left.mean() < 20 and 100 < right.mean() < 160, row["region_id"]  # upright, read left to right
    tilted = cv2.imread(str(out / rows[2]["crop"]))
    assert tilted.shape[1] > tilted.shape[0] * 2  # a line, turned flat


def test_ocr_manifest_without_copies_points_at_the_media(monkeypatch, tmp_path, tasks):
    tasks, _ = tasks
    out = tmp_path / "ocr"
    run_export(monkeypatch, out, CONFIG, tasks, "ocr", copy=False)
    rows = [json.loads(line) for line in (out / "ocr.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["image"] for r in rows} == {tasks[0]["data"]["image"]} and not any("crop" in r for r in rows)
    assert not (out / "crops").exists() and not (out / "images").exists()


def test_coco_export_of_an_ocr_project_has_one_annotation_per_region(monkeypatch, tmp_path, tasks):
    from pycocotools.coco import COCO

    tasks, _ = tasks
    run_export(monkeypatch, tmp_path / "coco", CONFIG, tasks, "coco")
    coco = COCO(str(tmp_path / "coco/annotations.json"))
    names = [coco.loadCats(a["category_id"])[0]["name"] for a in coco.loadAnns(coco.getAnnIds())]
    assert names == ["Text", "Handwriting", "Text"]  # a region's rectangle, labels and text are one region
