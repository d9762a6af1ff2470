"""The detection backend through the HTTP protocol (Flask's test client) with the real COCO YOLOv8n weights:
Ultralytics' bus.jpg, class selection, thresholds, polygons, exported weights, and bad input in one batch."""
from __future__ import annotations

import functools
import io
import logging
import pickle
import struct
import threading
import weakref
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ultralytics
import detection.pipeline as pipeline
from backends.app import create_app
from backends.regions_writers import DEFAULT_THRESHOLD
from backends.config import Settings
from tests.backends.protocol import predict

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"  # 810x1080: a bus and four persons

BOXES = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Person"/><Label value="Bus"/><Label value="Car"/>
  </RectangleLabels></View>"""
POLYGONS = """<View><Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image"><Label value="Person"/><Label value="Bus"/></PolygonLabels></View>"""


@pytest.fixture
def settings(tmp_path, weights_dir):
    return Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                    local_roots=(tmp_path, BUS.parent), allowed_hosts=("127.0.0.1",), max_image_pixels=50_000_000)


@pytest.fixture
def client(settings):
    return create_app("detection", settings).test_client()


def _predict(client, tasks, config=BOXES, project="5.1700000000"):
    return predict(client, tasks, config, project)["results"]


def _regions(answer, kind="rectanglelabels"):
    return [(r["value"][kind][0], r) for r in answer["result"]]


def test_setup_checks_the_config(client, tmp_path):
    for config in (BOXES, POLYGONS):
        assert client.post("/setup", json={"project": "5.1", "schema": config}).status_code == 200
    text = '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="A"/></Choices></View>'
    r = client.post("/setup", json={"project": "5.1", "schema": text})
    assert r.status_code == 400 and "<RectangleLabels>" in r.json["error"] and "<Image>" in r.json["error"]
    outside = BOXES.replace('toName="image"', 'toName="image" model_path="/etc/passwd"')
    r = client.post("/setup", json={"project": "5.1", "schema": outside})
    assert r.status_code == 400 and "outside the model roots" in r.json["error"]
    escape = BOXES.replace('toName="image"', 'toName="image" model_path="../../../etc/passwd"')
    assert client.post("/setup", json={"project": "5.1", "schema": escape}).status_code == 400
    bad = BOXES.replace('toName="image"', 'toName="image" model_score_threshold="high"')
    r = client.post("/setup", json={"project": "5.1", "schema": bad})
    assert r.status_code == 400 and "model_score_threshold" in r.json["error"]


def test_finds_the_bus_and_the_persons(client):
    [answer] = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}])
    found = _regions(answer)
    labels = sorted(lb for lb, _ in found)
    assert labels.count("Bus") == 1 and labels.count("Person") >= 3 and "Car" not in labels
    bus = next(r for lb, r in found if lb == "Bus")
    assert (bus["original_width"], bus["original_height"]) == (810, 1080) and bus["image_rotation"] == 0
    v = bus["value"]
    # the bus spans the width of the photo, in its upper-middle part
    assert v["x"] < 5 and v["width"] > 90 and 15 < v["y"] < 30 and 40 < v["height"] < 60 and v["rotation"] == 0
    for _, r in found:
        assert 0 <= r["value"]["x"] <= 100 and 0 <= r["value"]["y"] <= 100
        assert DEFAULT_THRESHOLD <= r["score"] <= 1
        assert r["from_name"] == "label" and r["to_name"] == "image" and r["type"] == "rectanglelabels"
    # the expected F1 of these boxes (detection.scoring): confident ones, with a few candidates below the threshold
    assert 0.6 < answer["score"] < 1


def test_class_selection_thresholds_and_predicted_values(client, caplog):
    only_bus = BOXES.replace('<Label value="Person"/>', "")
    [answer] = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}], only_bus)
    assert [lb for lb, _ in _regions(answer)] == ["Bus"]

    low = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}],
                   BOXES.replace('toName="image"', 'toName="image" model_score_threshold="0.2"'))[0]
    high = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}],
                    BOXES.replace('toName="image"', 'toName="image" model_score_threshold="0.85"'))[0]
    assert len(high["result"]) < len(low["result"])
    assert all(r["score"] >= 0.85 for r in high["result"]) and min(r["score"] for r in low["result"]) < 0.5

    mapped = """<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">
      <Label value="Vehicle" predicted_values="bus,car,truck"/><Label value="Human" predicted_values="person"/>
      <Label value="Unicorn"/></RectangleLabels></View>"""
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            [answer] = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}], mapped)
    labels = [lb for lb, _ in _regions(answer)]
    assert labels.count("Vehicle") == 1 and labels.count("Human") >= 3
    assert sum("Unicorn" in m for m in caplog.messages) == 1  # reported once, not an error


def test_polygons_for_polygon_labels(client):
    [answer] = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}], POLYGONS)
    found = _regions(answer, "polygonlabels")
    assert {lb for lb, _ in found} == {"Bus", "Person"}
    for _, r in found:
        pts = np.array(r["value"]["points"])
        assert r["type"] == "polygonlabels" and 3 <= len(pts) <= 1000 and r["value"]["closed"] is True
        assert (pts >= 0).all() and (pts <= 100).all()
    bus = np.array(next(r for lb, r in found if lb == "Bus")["value"]["points"])
    assert bus[:, 0].max() - bus[:, 0].min() > 85  # the outline spans the bus


def test_exported_weights_by_model_path(client):
    onnx = BOXES.replace('toName="image"', 'toName="image" model_path="yolov8n_int8.onnx"')
    [answer] = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}], onnx)
    assert sorted({lb for lb, _ in _regions(answer)}) == ["Bus", "Person"]
    seg = POLYGONS.replace('toName="image"', 'toName="image" model_path="yolov8n-seg_int8.onnx"')
    [answer] = _predict(client, [{"id": 1, "data": {"image": str(BUS)}}], seg)
    assert {lb for lb, _ in _regions(answer, "polygonlabels")} == {"Bus", "Person"}
    boxes_for_polygons = POLYGONS.replace('toName="image"', 'toName="image" model_path="yolov8n.pt"')
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": str(BUS)}}], "project": "5.1",
                                      "label_config": boxes_for_polygons})
    assert r.status_code == 400 and "needs a segmentation model" in r.json["error"]


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height but holds one row: a decompression bomb's header, cheaply."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


@pytest.fixture
def http_root(tmp_path):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bad_input_gets_per_task_errors_and_the_rest_predictions(client, tmp_path, http_root):
    bus = Image.open(BUS)
    bus.convert("L").save(tmp_path / "gray.png")
    bus.convert("RGBA").save(tmp_path / "rgba.png")
    gray16 = (np.asarray(bus.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    data = BUS.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg at all" * 20)
    _png_header_only(tmp_path / "bomb.png", 30000, 30000)
    buf = io.BytesIO()
    bus.save(buf, "JPEG")
    (tmp_path / "served.jpg").write_bytes(buf.getvalue())
    tasks = [{"id": 1, "data": {"image": str(tmp_path / "gray.png")}},
             {"id": 2, "data": {"image": str(tmp_path / "truncated.jpg")}},
             {"id": 3, "data": {"image": str(tmp_path / "rgba.png")}},
             {"id": 4, "data": {"image": f"{http_root}/missing.jpg"}},
             {"id": 5, "data": {"image": str(tmp_path / "bomb.png")}},
             {"id": 6, "data": {"image": str(tmp_path / "gray16.png")}},
             {"id": 7, "data": {"image": str(tmp_path / "corrupt.jpg")}},
             {"id": 8, "data": {"picture": "x"}},
             {"id": 9, "data": {"image": f"{http_root}/served.jpg"}}]
    answers = _predict(client, tasks)
    assert len(answers) == 9
    errors = {t["id"]: a.get("error") for t, a in zip(tasks, answers)}
    for ok in (1, 3, 6, 9):
        assert errors[ok] is None and "Bus" in [lb for lb, _ in _regions(answers[ok - 1])], (ok, answers[ok - 1])
    assert "truncated" in errors[2].lower() and errors[2].startswith("task 2:")
    assert "404" in errors[4]
    assert "900000000 pixels" in errors[5] or "30000x30000" in errors[5]
    assert "not an image" in errors[7] or "cannot identify" in errors[7]
    assert "no field 'image'" in errors[8]
    for bad in (2, 4, 5, 7, 8):
        assert "result" not in answers[bad - 1]


def _borderline_and_empty(tmp_path) -> list[dict]:
    """Tasks of the bus photo (confident boxes), the same blurred until every box is borderline, and a grey
    image where there is nothing to find."""
    photo = Image.open(BUS)
    photo.save(tmp_path / "bus.png")
    blurred = np.asarray(photo.convert("RGB"))
    import cv2

    Image.fromarray(cv2.GaussianBlur(blurred, (0, 0), 16)).save(tmp_path / "blurred.png")
    Image.new("RGB", (320, 240), (128, 128, 128)).save(tmp_path / "blank.png")
    return [{"id": i, "data": {"image": str(tmp_path / f"{name}.png")}}
            for i, name in enumerate(("bus", "blurred", "blank"), 1)]


def test_borderline_boxes_rank_above_a_confidently_empty_image(client, tmp_path):
    bus, blurred, blank = _predict(client, _borderline_and_empty(tmp_path))
    # nothing above the floor: confidently empty, not the most uncertain task of the project
    assert blank["result"] == [] and blank["score"] == 1.0
    # low-scored candidates around the threshold: what the annotator has to look at first (lowest score first)
    assert blurred["score"] < 0.5 and blurred["score"] < bus["score"] < blank["score"]
    assert all(r["score"] >= DEFAULT_THRESHOLD for r in blurred["result"])  # candidates below it are not shown


def test_uncertainty_strategy_is_honoured_or_refused(client, tmp_path):
    tasks = _borderline_and_empty(tmp_path)[:2]
    many = """<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">
      <Label value="Person"/><Label value="Bus"/><Label value="Car"/><Label value="Truck"/><Label value="Train"/>
      </RectangleLabels></View>"""
    by = {}
    for name in ("least_confidence", "margin", "entropy"):
        r = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": many,
                                          "params": {"uncertainty": name}})
        assert r.status_code == 200, r.json
        by[name] = [a["score"] for a in r.json["results"]]
    # the class probabilities of every candidate are read: the measures see different things in them
    assert by["margin"] != by["least_confidence"] and by["entropy"] != by["least_confidence"]
    assert all(0 <= s <= 1 for scores in by.values() for s in scores)
    r = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": BOXES,
                                      "params": {"uncertainty": "most_wrong"}})
    assert r.status_code == 400 and "'uncertainty'" in r.json["error"] and "kcenter" in r.json["error"], r.json
    r = client.post("/setup", json={"project": "5.1", "schema": BOXES, "extra_params": {"uncertainty": "nope"}})
    assert r.status_code == 400 and "'uncertainty'" in r.json["error"], r.json
    # a segmentation model gives no class probabilities: margin is refused for outlines, not silently replaced
    r = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": POLYGONS,
                                      "params": {"uncertainty": "margin"}})
    assert r.status_code == 400 and "least_confidence" in r.json["error"] and "outline" in r.json["error"], r.json
    r = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": POLYGONS,
                                      "params": {"uncertainty": "kcenter"}})  # scored by least confidence
    assert r.status_code == 200 and all("score" in a for a in r.json["results"]), r.json


class _Planted:
    """A pickle that creates a file when it is loaded: what a weights file planted in MODEL_DIR could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_model_path_loads_only_allowed_or_own_weights(client, settings, tmp_path):
    marker = tmp_path / "pwned"
    planted = settings.model_dir / "detection" / "5" / "v9" / "weights.pt"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(pickle.dumps(_Planted(marker)))
    for spec, why in ((str(planted), "outside the model roots"), ("yolov8x.pt", "never downloaded")):
        config = BOXES.replace('toName="image"', f'toName="image" model_path="{spec}"')
        r = client.post("/setup", json={"project": "5.1", "schema": config})
        assert r.status_code == 400 and why in r.json["error"], r.json
        r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": str(BUS)}}], "project": "5.1",
                                          "label_config": config})
        assert r.status_code == 400 and why in r.json["error"], r.json
    assert not marker.exists()


def test_numeric_params_are_range_checked(client):
    task = {"id": 1, "data": {"image": str(BUS)}}
    r = client.post("/predict", json={"tasks": [task], "project": "5.1", "label_config": BOXES,
                                      "params": {"imgsz": 100000}})
    assert r.status_code == 400 and "'imgsz'" in r.json["error"] and "32 to 2048" in r.json["error"], r.json
    r = client.post("/setup", json={"project": "5.1", "schema": BOXES, "extra_params": {"batch_predict": 10**6}})
    assert r.status_code == 400 and "'batch_predict'" in r.json["error"], r.json


def test_images_are_streamed_at_most_k_decoded_within_a_request_budget(settings, monkeypatch):
    live, peak = [], [0]
    real = pipeline.load_image

    def tracked(*args, **kwargs):
        array = real(*args, **kwargs)
        live.append(weakref.ref(array))
        peak[0] = max(peak[0], sum(ref() is not None for ref in live))
        return array

    monkeypatch.setattr(pipeline, "load_image", tracked)
    tasks = [{"id": i, "data": {"image": str(BUS)}} for i in range(1, 8)]
    client = create_app("detection", settings).test_client()
    r = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": BOXES,
                                      "params": {"batch_predict": 2}})
    answers = r.json["results"]
    assert all("Bus" in [lb for lb, _ in _regions(a)] for a in answers)
    # K = batch_predict + LOOKAHEAD decoded at most (a batch predicted, the next ones loaded meanwhile), counted
    assert len(live) == 7 and 1 <= peak[0] <= 2 + pipeline.LOOKAHEAD and all(ref() is None for ref in live)
    # the budget admits tasks in order until it is spent: bus.jpg is 810x1080
    client = create_app("detection", settings.with_overrides(max_request_pixels=3 * 810 * 1080)).test_client()
    answers = predict(client, tasks[:5], BOXES, "5.1")["results"]
    assert ["error" in a for a in answers] == [False, False, False, True, True]
    assert answers[3]["error"].startswith("task 4:") and "MAX_REQUEST_PIXELS" in answers[3]["error"]


def test_answers_in_task_order_over_mixed_shapes_and_a_broken_image(client, tmp_path):
    zidane = BUS.parent / "zidane.jpg"  # 1280x720: a shape of its own, so batches split between the bus photos
    (tmp_path / "broken.jpg").write_bytes(BUS.read_bytes()[:2000])
    paths = [BUS, zidane, BUS, tmp_path / "broken.jpg", BUS, zidane, BUS]
    tasks = [{"id": 10 + i, "data": {"image": str(p)}} for i, p in enumerate(paths)]
    r = client.post("/predict", json={"tasks": tasks, "project": "5.1", "label_config": BOXES,
                                      "params": {"batch_predict": 4}})
    answers = r.json["results"]
    assert len(answers) == len(tasks)
    assert answers[3]["error"].startswith("task 13:") and "truncated" in answers[3]["error"]
    for path, answer in zip(paths, answers):
        if path.name == "broken.jpg":
            continue
        sizes = {(reg["original_width"], reg["original_height"]) for reg in answer["result"]}
        labels = {lb for lb, _ in _regions(answer)}
        if path == BUS:
            assert sizes == {(810, 1080)} and "Bus" in labels, answer
        else:
            assert sizes == {(1280, 720)} and "Person" in labels and "Bus" not in labels, answer


def test_embed_gives_one_pooled_feature_vector_per_image(client, tmp_path):
    tasks = _borderline_and_empty(tmp_path) + [{"id": 4, "data": {"image": "/nowhere.jpg"}}]
    r = client.post("/embed", json={"tasks": tasks, "project": "5.1", "label_config": BOXES})
    assert r.status_code == 200, r.json
    *vectors, missing = r.json["embeddings"]
    assert missing is None and "task 4" in r.json["errors"][3] and r.json["errors"][:3] == [None] * 3
    v = np.array(vectors)
    assert v.shape == (3, 256) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)
    # the photo is nearer its blurred copy than a grey image
    assert v[0] @ v[1] > v[0] @ v[2]


def test_a_version_serves_the_threshold_it_learned_unless_the_project_sets_one(settings, weights_dir, tmp_path):
    import shutil

    from backends.adapters.detection import DetectionAdapter
    from backends.media import MediaFetcher
    from detection.trained import write_manifest

    version = tmp_path / "v1"
    (version / "control-0").mkdir(parents=True)
    shutil.copy(weights_dir / "yolov8n.pt", version / "control-0" / "weights.pt")
    write_manifest(version, {"label": {"task": "detect", "classes": [], "weights": "control-0/weights.pt",
                                       "threshold": 0.8}})
    backend = DetectionAdapter(settings)
    model = backend.load_model(version)
    assert model.controls["label"].threshold == 0.8
    task = [{"id": 1, "data": {"image": str(BUS)}}]
    media = MediaFetcher(settings)
    [learned] = backend.predict(model, task, BOXES, media=media)
    assert learned.result and all(r["score"] >= 0.8 for r in learned.result)
    [asked] = backend.predict(model, task, BOXES, params={"model_score_threshold": 0.2}, media=media)
    assert min(r["score"] for r in asked.result) < 0.8 and len(asked.result) > len(learned.result)
