"""The detection backend end to end: coco128 images uploaded to a real Label Studio, boxes predicted by a real
backend process, annotations submitted, a fine-tune run by an RQ worker on the real redis-server, the new version
served back, and unlabeled tasks ordered by the image's confidence."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from label_studio_sdk import LabelStudio

from ops.services import wait_until
from tests.e2e.label_studio import predictions, retrieve_predictions, upload
from tests.backends.test_detection_training import CONFIG, coco128_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N_TRAIN, N_NEW = 12, 6


def test_label_studio_drives_the_detection_backend(label_studio, redis_server, start_backend, datasets_dir):
    backend = start_backend("detection", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY=str(N_TRAIN))
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    examples = coco128_tasks(datasets_dir, N_TRAIN + N_NEW)
    project = client.projects.create(title="e2e detection", label_config=CONFIG)
    upload(label_studio, project.id, {Path(ex.data["image"]).name: Path(ex.data["image"]) for ex in examples})
    by_name = {t.data["image"].rsplit("/", 1)[-1].split("-", 1)[-1]: t.id for t in client.tasks.list(project=project.id)}
    assert len(by_name) == len(examples)

    # a short fine-tune (small images, few epochs) through the project's extra params; with 2-3 validation images
    # the guard is a coin toss, so it is switched off here (tests/backends/test_detection_training.py tests it)
    client.ml.create(project=project.id, url=backend.url, title="labelloop detection", is_interactive=False,
                     extra_params={"epochs": 3, "imgsz": 320, "batch": 8, "min_train_images": 4,
                                   "min_map_gain": -1.0})
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    assert all(len(p) == 1 for p in preds.values()), (preds, logs()[-3000:])
    items = [i for p in preds.values() for i in p[0]["result"]]
    assert {i["value"]["rectanglelabels"][0] for i in items} == {"Person"}  # the COCO model has no "Vehicle"
    assert all(p[0]["model_version"] == "detection-base" for p in preds.values())

    # annotators submit boxes (the vehicles relabelled); the N_TRAIN-th annotation starts training on the worker
    for ex in examples[:N_TRAIN]:
        task_id = by_name[ex.data["image"].rsplit("/", 1)[-1]]
        client.annotations.create(task_id, result=ex.result, was_cancelled=False)
    health = lambda: requests.get(f"{backend.url}/health", params={"project": project.id}, timeout=10).json()  # noqa
    jobs = lambda: requests.get(f"{backend.url}/jobs", params={"project": project.id},  # noqa: E731
                                timeout=10).json()["jobs"]
    wait_until("training to finish", lambda: jobs() and all(j["status"] not in ("queued", "running") for j in jobs()),
               400, logs)
    job = jobs()[0]
    assert job["status"] == "succeeded", (job, logs()[-3000:])
    result = job["result"]
    assert result["status"] in ("published", "rejected") and "map50_95" in result["metrics"], result
    print("training:", result)
    assert result["status"] == "published", result
    assert result["metrics"]["label"]["new_classes"] == ["Vehicle"]
    version = health()["model_version"]
    assert version == "detection-v1"

    # the new version is served and Label Studio orders unlabeled tasks by the image's confidence
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    client.projects.update(project.id, model_version=version)
    preds = predictions(client, project.id)
    unlabeled = [by_name[ex.data["image"].rsplit("/", 1)[-1]] for ex in examples[N_TRAIN:]]
    newest = {tid: next(p for p in preds[tid] if p["model_version"] == version) for tid in unlabeled}
    query = {"ordering": ["tasks:predictions_score"],
             "filters": {"conjunction": "and", "items": [{"filter": "filter:tasks:total_annotations",
                                                          "operator": "equal", "type": "Number", "value": 0}]}}
    ordered = [t.id for t in client.tasks.list(project=project.id, query=json.dumps(query))]
    assert set(ordered) == set(unlabeled)
    scores = [newest[tid]["score"] for tid in ordered]
    assert scores == sorted(scores)
