"""The image_cls backend end to end: coco128 photos uploaded to a real Label Studio, their classes predicted by a
real backend process with the top-k stored in Label Studio and returned by its API, a broken upload answered with
its own error, choices submitted, a head trained by an RQ worker on the real redis-server and served back."""
from __future__ import annotations

from pathlib import Path

import csv
import json

import pytest
import requests
from label_studio_sdk import LabelStudio

from ops.sample_data import coco128_samples
from scripts.labelloop_sync.cli import main as sync
from tests.e2e.label_studio import predictions, published_version, retrieve_predictions, upload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = """<View><Image name="image" value="$image"/><Choices name="kind" toName="image">
  <Choice value="Person"/><Choice value="Vehicle" predicted_values="car,bus,truck,motorcycle"/>
  <Choice value="Animal"/></Choices></View>"""
GROUPS = {"person": "Person", "car": "Vehicle", "bus": "Vehicle", "truck": "Vehicle", "motorcycle": "Vehicle",
          "dog": "Animal", "cat": "Animal", "horse": "Animal", "elephant": "Animal", "giraffe": "Animal",
          "zebra": "Animal", "bear": "Animal", "bird": "Animal", "cow": "Animal", "sheep": "Animal"}
N_TRAIN = 16


def _labeled(datasets_dir: Path) -> list[tuple[Path, str]]:
    """coco128 photos whose largest class (by box area) is a person, a vehicle or an animal, with that group;
    animals first, so that the labels hold every group."""
    out = []
    for s in coco128_samples(datasets_dir):
        area: dict[str, float] = {}
        for o in s.objects:
            area[o.cls] = area.get(o.cls, 0.0) + (o.xyxy[2] - o.xyxy[0]) * (o.xyxy[3] - o.xyxy[1])
        if area and max(area, key=area.get) in GROUPS:
            out.append((s.image, GROUPS[max(area, key=area.get)]))
    animals = [x for x in out if x[1] == "Animal"]
    others = [x for x in out if x[1] != "Animal"]
    return [x for pair in zip(animals, others) for x in pair][:N_TRAIN] + others[len(animals):][:4]


def test_label_studio_drives_the_image_cls_backend(label_studio, redis_server, start_backend, datasets_dir,
                                                  tmp_path):
    backend = start_backend("image_cls", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY=str(N_TRAIN))
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    photos = _labeled(datasets_dir)
    project = client.projects.create(title="e2e image_cls", label_config=CONFIG)
    upload(label_studio, project.id, {**{p.name: p for p, _ in photos}, "broken.jpg": b"\xff\xd8 not a jpeg"})
    by_name = {t.data["image"].rsplit("/", 1)[-1].split("-", 1)[-1]: t for t in client.tasks.list(project=project.id)}
    assert len(by_name) == len(photos) + 1

    # the guard is tested in tests/backends/test_image_cls_adapter.py; with 16 labels its folds are a coin toss
    client.ml.create(project=project.id, url=backend.url, title="labelloop image_cls", is_interactive=False,
                     extra_params={"top_k": 2, "guard_tolerance": 1.0, "imgsz": 320})
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    broken = by_name["broken.jpg"]
    assert preds[broken.id] == [], preds[broken.id]  # the broken photo alone has no prediction
    good = {tid: p for tid, p in preds.items() if tid != broken.id}
    assert all(len(p) == 1 for p in good.values()), (preds, logs()[-3000:])
    items = [i for p in good.values() for i in p[0]["result"]]
    assert items, (preds, logs()[-3000:])
    for item in items:  # "Animal" maps to no detector class: never predicted, not even in the top-k
        top = item["value"]["top_k"]
        assert 1 <= len(top) <= 2 and item["value"]["choices"] == [top[0]["label"]]
        assert "Animal" not in {t["label"] for t in top} and all(0 < t["score"] <= 1 for t in top)
    answer = requests.post(f"{backend.url}/predict", json={"tasks": [{"id": broken.id, "data": broken.data}],
                                                           "label_config": CONFIG, "project": str(project.id)},
                           timeout=60).json()["results"][0]
    assert f"task {broken.id}" in answer["error"] and "result" not in answer

    # annotators choose; the N_TRAIN-th annotation starts training on the worker
    for path, group in photos[:N_TRAIN]:
        client.annotations.create(by_name[path.name].id, was_cancelled=False, result=[
            {"from_name": "kind", "to_name": "image", "type": "choices", "value": {"choices": [group]}}])
    version = published_version(backend.url, project.id, logs)
    assert version == "image_cls-v1"

    # the new version is served: it may now name the learned class, and still lists its top-k
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    newest = [p for tid, ps in preds.items() for p in ps if p["model_version"] == version]
    assert len(newest) == len(photos), (preds, logs()[-3000:])
    learned = {i["value"]["choices"][0] for p in newest for i in p["result"]}
    assert "Animal" in learned and all(len(i["value"]["top_k"]) == 2 for p in newest for i in p["result"])

    # `sync.py export` carries each completed task's top-k (of its newest prediction) in JSON and CSV
    for fmt in ("json", "csv"):
        assert sync(["--url", label_studio.url, "--api-key", label_studio.token, "export", "--project",
                     str(project.id), "--format", fmt, "--out", str(tmp_path / fmt)]) == 0
    exported = json.loads((tmp_path / "json" / "tasks.json").read_text())
    assert len(exported) == N_TRAIN and all(len(t["top_k"]["kind"]) == 2 for t in exported), exported[:1]
    newest_by_task = {tid: max(ps, key=lambda p: p["id"]) for tid, ps in preds.items() if ps}
    first = exported[0]
    assert first["top_k"]["kind"] == newest_by_task[first["id"]]["result"][0]["value"]["top_k"]
    rows = list(csv.DictReader((tmp_path / "csv" / "tasks.csv").open()))
    assert len(rows) == N_TRAIN and all(r["top_k"].startswith("kind=") and r["top_k"].count("|") == 1 for r in rows)
