"""The OCR backend through the HTTP protocol (Flask's test client) with the real RapidOCR models: one region per
rendered line (rotated rectangle or polygon, its label, its text, its score, all under one id), an image without
text, a broken image's own error, config and param checks; annotations read back, and a version trained from
corrected text that writes the annotators' spelling."""
from __future__ import annotations

import numpy as np
import pytest

from backends.adapters.ocr import EMPTY_SCORE, OCRAdapter
from backends.app import create_app
from backends.base import LabeledTask
from backends.config import Settings
from backends.exceptions import NotEnoughData
from backends.media import MediaFetcher
from backends.regions import polygon_pixels, rect_corners
from backends.regions_ocr import OcrRegions, ocr_layout, quad_to_rect_value
from ocr.engine import Line
from ocr.metrics import iou
from ocr.synthetic import render, save
from tests.backends.protocol import predict

RECT = """<View><Image name="image" value="$ocr"/>
  <Labels name="label" toName="image"><Label value="Handwriting"/><Label value="Printed" predicted_values="text"/>
  </Labels><Rectangle name="bbox" toName="image"/><Polygon name="poly" toName="image"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true"/></View>"""
POLY = """<View><Image name="image" value="$ocr"/>
  <PolygonLabels name="line" toName="image"><Label value="Text"/></PolygonLabels>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true"/></View>"""
TEXTS = ["Invoice total 42", "Opening hours Monday"]


@pytest.fixture
def settings(tmp_path):
    return Settings(model_dir=tmp_path / "models", media_cache_dir=tmp_path / "media", local_roots=(tmp_path,))


@pytest.fixture
def client(settings):
    return create_app("ocr", settings).test_client()


@pytest.fixture
def files(tmp_path):
    image, truth = render(TEXTS, seed=3, width=800, height=400, max_angle=15)
    save(image, tmp_path / "lines.png")
    save(np.full((240, 320, 3), 200, dtype=np.uint8), tmp_path / "blank.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp_path, truth


def test_setup_checks_the_config_and_the_params(client):
    assert client.post("/setup", json={"project": "1.1", "schema": RECT}).status_code == 200
    no_area = RECT.replace('perRegion="true"', "")
    r = client.post("/setup", json={"project": "1.1", "schema": no_area})
    assert r.status_code == 400 and "TextArea" in r.json["error"]
    no_shape = RECT.replace('<Rectangle name="bbox" toName="image"/><Polygon name="poly" toName="image"/>', "")
    r = client.post("/setup", json={"project": "1.1", "schema": no_shape})
    assert r.status_code == 400 and "Rectangle" in r.json["error"]
    for bad in ({"model_score_threshold": 2}, {"shape": "circle"}):
        r = client.post("/setup", json={"project": "1.1", "schema": RECT, "extra_params": bad})
        assert r.status_code == 400 and next(iter(bad)) in r.json["error"]


def test_each_line_is_one_region_with_its_text_and_score(client, files):
    folder, truth = files
    tasks = [{"id": i + 1, "data": {"ocr": str(folder / name)}} for i, name in
             enumerate(["lines.png", "blank.png", "broken.png"])] + [{"id": 4, "data": {}}]
    lines, blank, broken, missing = predict(client, tasks, RECT, "1.1")["results"]
    by_id: dict[str, list[dict]] = {}
    for item in lines["result"]:
        by_id.setdefault(item["id"], []).append(item)
    assert len(by_id) == 2
    texts, scores = set(), []
    for items in by_id.values():
        assert [i["type"] for i in items] == ["rectangle", "labels", "textarea"]
        assert items[1]["value"]["labels"] == ["Printed"]  # the label that predicts "text"
        assert len({i["score"] for i in items}) == 1 and 0.5 <= items[0]["score"] <= 1
        geometry = {k: items[0]["value"][k] for k in ("x", "y", "width", "height", "rotation")}
        assert all({k: i["value"][k] for k in geometry} == geometry for i in items)
        text = items[2]["value"]["text"][0]
        texts.add(text)
        corners = rect_corners(items[0]["value"], 800, 400)
        true = next(t for t in truth if t.text == text)
        assert iou(corners, true.points) > 0.6, (text, corners, true.points)
        scores.append(items[0]["score"])
    assert texts == set(TEXTS)
    assert lines["score"] == pytest.approx(min(scores), abs=1e-3)
    assert blank["result"] == [] and blank["score"] == EMPTY_SCORE
    assert "task 3" in broken["error"] and "result" not in broken
    assert "task 4" in missing["error"] and "ocr" in missing["error"]


def test_polygons_when_the_config_asks_for_them(client, files):
    folder, truth = files
    task = [{"id": 1, "data": {"ocr": str(folder / "lines.png")}}]
    result = predict(client, task, POLY, "1.2")["results"][0]["result"]
    assert [i["type"] for i in result] == ["polygonlabels", "textarea"] * 2
    for shape, text in zip(result[::2], result[1::2]):
        assert shape["id"] == text["id"] and shape["value"]["polygonlabels"] == ["Text"]
        true = next(t for t in truth if t.text == text["value"]["text"][0])
        assert iou(polygon_pixels(shape["value"], 800, 400), true.points) > 0.6
    r = client.post("/predict", json={"tasks": task, "project": "1.1", "label_config": RECT,
                                      "params": {"shape": "polygon"}})
    assert [i["type"] for i in r.json["results"][0]["result"][:3]] == ["polygon", "labels", "textarea"]
    high = client.post("/predict", json={"tasks": task, "project": "1.1", "label_config": RECT,
                                         "params": {"model_score_threshold": 1}}).json["results"][0]
    assert high["result"] == [] and high["score"] < 1  # hidden lines still say the image has text


def test_a_rotated_rectangle_comes_back_as_the_same_corners():
    quad = np.array([[100.0, 50.0], [300.0, 165.47], [285.0, 191.45], [85.0, 75.98]])  # 30 degrees, 200 x 30
    value = quad_to_rect_value(quad, 640, 360)
    assert value["rotation"] == pytest.approx(30, abs=0.1)
    assert np.abs(rect_corners(value, 640, 360) - quad).max() < 0.5
    regions = OcrRegions(ocr_layout(RECT))
    items = regions.predict_regions([Line(quad, "a line", 0.9)], 640, 360)
    (outline, text), = regions.read_regions(items, 640, 360)
    assert text == "a line" and np.abs(outline - quad).max() < 0.5
    poly = OcrRegions(ocr_layout(POLY))
    (outline, _), = poly.read_regions(poly.predict_regions([Line(quad, "x", 0.9)], 640, 360), 640, 360)
    assert np.abs(outline - quad).max() < 1e-6
    assert regions.read_regions([{"id": "a", "from_name": "transcription", "type": "textarea",
                                  "value": {"text": ["no shape"]}}], 640, 360) == []
    no_ids = [{k: v for k, v in i.items() if k != "id"} for i in items]  # a result written without region ids
    (outline, text), = regions.read_regions(no_ids, 640, 360)
    assert text == "a line" and np.abs(outline - quad).max() < 0.5
    shape_only = [items[0], {**items[2], "value": {"text": ["by its id"]}}]  # the text item without geometry
    assert regions.read_regions(shape_only, 640, 360)[0][1] == "by its id"


def test_submitted_text_trains_a_version_that_writes_it(settings, tmp_path):
    backend, media = OCRAdapter(settings), MediaFetcher(settings)
    regions = OcrRegions(ocr_layout(RECT))
    examples = []
    for i in range(6):  # the images print the code with digits; the annotators' catalogue spells it otherwise
        image, truth = render([f"code 00110 shelf {i + 2}", "open today"], seed=10 + i, width=640, height=320)
        save(image, tmp_path / f"t{i}.png")
        wanted = [Line(t.points, t.text.replace("00110", "OO1l0"), 1.0) for t in truth]
        examples.append(LabeledTask(i + 1, {"ocr": str(tmp_path / f"t{i}.png")},
                                    regions.predict_regions(wanted, 640, 320)))
    base = backend.load_model(None)
    result = backend.fit(examples, RECT, base, tmp_path / "v1", media=media)
    assert result.publish, (result.reason, result.metrics)
    assert result.metrics["cer_after"] < result.metrics["cer_before"] and result.metrics["regions_unmatched"] == 0
    served = backend.load_model(tmp_path / "v1")
    answer = backend.predict(served, [{"id": 9, "data": {"ocr": str(tmp_path / "t0.png")}}], RECT, media=media)[0]
    assert any(i["value"]["text"][0].startswith("code OO1l0 shelf") for i in answer.result if i["type"] == "textarea")
    with pytest.raises(NotEnoughData, match="at least 3"):
        backend.fit(examples[:2], RECT, base, tmp_path / "v2", media=media)


def test_the_adapter_does_not_load_pytorch():
    """RapidOCR runs on onnxruntime: the ocr process stays ~0.6 GB smaller than one that imports PyTorch."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, backends.adapters.ocr; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False", out.stderr[-2000:]
