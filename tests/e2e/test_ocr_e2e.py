"""The OCR backend end to end: rendered text images uploaded to a real Label Studio, one region per line predicted
by a real backend process and stored where the text is (rotated rectangles), an image without text answered with
an empty result and its score, a broken upload with its own error; annotators' corrected text trains a version
on an RQ worker against the real redis-server, and the new version writes their spelling."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import requests
from label_studio_sdk import LabelStudio
from PIL import Image

from backends.adapters.ocr import EMPTY_SCORE
from backends.regions import rect_corners
from ocr.metrics import iou
from ocr.synthetic import render
from tests.e2e.label_studio import predictions, published_version, retrieve_predictions, upload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = """<View><Image name="image" value="$image"/>
  <Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>
  <Rectangle name="bbox" toName="image"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true"/></View>"""
N_TRAIN = 3
W, H = 640, 320


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_label_studio_drives_the_ocr_backend(label_studio, redis_server, start_backend):
    backend = start_backend("ocr", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY=str(N_TRAIN))
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    # the images print a code with digits; this project's catalogue spells it "OO1l0"
    rendered = {f"shelf{i}.png": render([f"code 00110 shelf {i + 2}", "open today"], seed=20 + i, width=W,
                                        height=H, max_angle=8) for i in range(N_TRAIN)}
    blank = np.full((H, W, 3), 225, dtype=np.uint8)
    project = client.projects.create(title="e2e ocr", label_config=CONFIG)
    upload(label_studio, project.id, {**{name: _png(img) for name, (img, _) in rendered.items()},
                                      "blank.png": _png(blank), "broken.png": b"\x89PNG\r\n\x1a\n broken"})
    by_name = {t.data["image"].rsplit("/", 1)[-1].split("-", 1)[-1]: t for t in client.tasks.list(project=project.id)}
    client.ml.create(project=project.id, url=backend.url, title="labelloop ocr", is_interactive=False)
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)

    # one region per line, where the line is, with its text and score; the Text label
    for name, (_, truth) in rendered.items():
        (pred,) = preds[by_name[name].id]
        assert pred["model_version"] == "ocr-base" and 0 < pred["score"] <= 1, (pred, logs()[-3000:])
        boxes = {r["id"]: r for r in pred["result"] if r["type"] == "rectangle"}
        texts = {r["id"]: r["value"]["text"][0] for r in pred["result"] if r["type"] == "textarea"}
        labels = {r["id"]: r["value"]["labels"] for r in pred["result"] if r["type"] == "labels"}
        assert set(boxes) == set(texts) == set(labels) and len(boxes) == len(truth), pred["result"]
        for rid, text in texts.items():
            true = next(t for t in truth if t.text == text)
            assert iou(rect_corners(boxes[rid]["value"], W, H), true.points) > 0.6, (text, boxes[rid])
            assert labels[rid] == ["Text"]
    (empty,) = preds[by_name["blank.png"].id]
    assert empty["result"] == [] and empty["score"] == EMPTY_SCORE
    assert preds[by_name["broken.png"].id] == []  # no prediction stored for it alone
    broken = by_name["broken.png"]
    answer = requests.post(f"{backend.url}/predict", json={"tasks": [{"id": broken.id, "data": broken.data}],
                                                           "label_config": CONFIG, "project": str(project.id)},
                           timeout=60).json()["results"][0]
    assert f"task {broken.id}" in answer["error"] and "result" not in answer

    # annotators accept the regions and write the code their way; the N_TRAIN-th annotation starts training
    for name in rendered:
        result = copy.deepcopy(preds[by_name[name].id][0]["result"])
        for item in result:
            item.pop("score", None)
            if item["type"] == "textarea":
                item["value"]["text"] = [item["value"]["text"][0].replace("00110", "OO1l0")]
        client.annotations.create(by_name[name].id, result=result, was_cancelled=False)
    version = published_version(backend.url, project.id, logs)
    assert version == "ocr-v1"

    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    first = by_name["shelf0.png"].id
    newest = next(p for p in predictions(client, project.id)[first] if p["model_version"] == version)
    assert "code OO1l0 shelf 2" in {r["value"]["text"][0] for r in newest["result"] if r["type"] == "textarea"}
