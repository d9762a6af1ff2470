"""The keypoints backend end to end: photos uploaded to a real Label Studio, face landmarks predicted by a real
backend process as keypoint regions of each face's rectangle (labels that map to no landmark never predicted), a
broken upload answered with its own error, keypoints of a skeleton of the project's own submitted, a pose model
trained by an RQ worker on the real redis-server and served back as the project's new version."""
from __future__ import annotations

import pytest
import requests
from label_studio_sdk import LabelStudio

from backends.labels import find_controls
from backends.regions_keypoints import KeypointWriter
from bench.keypoints_shapes import LABELS, make_samples
from tests.e2e.label_studio import predictions, published_version, retrieve_predictions, upload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# one project, two skeletons: face landmarks from dlib ("pupil" maps to none), and figures learned from labels
CONFIG = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Face"/></RectangleLabels>
  <KeyPointLabels name="face" toName="image"><Label value="nose_tip"/><Label value="left_eye"/>
    <Label value="pupil"/></KeyPointLabels>
  <KeyPointLabels name="fig" toName="image"><Label value="red"/><Label value="green"/><Label value="blue"/>
  </KeyPointLabels></View>"""
FACE_PHOTOS = ("000000000459.jpg", "000000000294.jpg")
N_TRAIN = 6


def test_label_studio_drives_the_keypoints_backend(label_studio, redis_server, start_backend, datasets_dir,
                                                  tmp_path):
    backend = start_backend("keypoints", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY=str(N_TRAIN))
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    figures = make_samples(tmp_path / "figures", N_TRAIN)
    project = client.projects.create(title="e2e keypoints", label_config=CONFIG)
    upload(label_studio, project.id, {**{n: datasets_dir / "coco128" / "images" / "train2017" / n for n in FACE_PHOTOS},
                                      **{s.image.name: s.image for s in figures}, "broken.jpg": b"\xff\xd8 nope"})
    by_name = {t.data["image"].rsplit("/", 1)[-1].split("-", 1)[-1]: t for t in client.tasks.list(project=project.id)}
    assert len(by_name) == len(FACE_PHOTOS) + N_TRAIN + 1

    client.ml.create(project=project.id, url=backend.url, title="labelloop keypoints", is_interactive=False,
                     extra_params={"imgsz": 160, "epochs": 1, "batch": 4, "min_train_images": 4})
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    broken = by_name["broken.jpg"]
    assert preds[broken.id] == [], preds[broken.id]  # the broken photo alone has no prediction
    for name in FACE_PHOTOS:
        (pred,) = preds[by_name[name].id]
        boxes = [r for r in pred["result"] if r["type"] == "rectanglelabels"]
        points = [r for r in pred["result"] if r["type"] == "keypointlabels"]
        assert boxes and points, (pred, logs()[-3000:])
        assert {p["value"]["keypointlabels"][0] for p in points} == {"nose_tip", "left_eye"}  # never "pupil"
        assert {p["parentID"] for p in points} <= {b["id"] for b in boxes}
        assert all(p["from_name"] == "face" for p in points) and 0 < pred["score"] <= 1
    for s in figures:  # no face, and nothing learned yet for the figures
        assert [p["result"] for p in preds[by_name[s.image.name].id]] == [[]]
    answer = requests.post(f"{backend.url}/predict", json={"tasks": [{"id": broken.id, "data": broken.data}],
                                                           "label_config": CONFIG, "project": str(project.id)},
                           timeout=60).json()["results"][0]
    assert f"task {broken.id}" in answer["error"] and "result" not in answer

    # annotators place the figures' points; the N_TRAIN-th annotation starts training on the worker
    fig = next(c for c in find_controls(CONFIG, ("keypointlabels",), ("image",)) if c.name == "fig")
    for s in figures:
        client.annotations.create(by_name[s.image.name].id, was_cancelled=False,
                                  result=KeypointWriter(fig).items(s.instances[0], s.width, s.height))
    version = published_version(backend.url, project.id, logs, timeout=400)
    assert version == "keypoints-v1"

    # the new version is served: faces still from dlib, every task predicted again under the new version
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    newest = {tid: [p for p in ps if p["model_version"] == version] for tid, ps in preds.items()}
    assert all(newest[t.id] for t in by_name.values() if t.id != broken.id), (preds, logs()[-3000:])
    face = newest[by_name[FACE_PHOTOS[0]].id][0]["result"]
    assert {r["value"]["keypointlabels"][0] for r in face if r["from_name"] == "face"} == {"nose_tip", "left_eye"}
    assert all(r["value"]["keypointlabels"][0] in LABELS for ps in newest.values() for p in ps
               for r in p["result"] if r["from_name"] == "fig")
