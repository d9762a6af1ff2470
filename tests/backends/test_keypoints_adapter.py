"""The keypoints backend through the HTTP protocol (Flask's test client): face landmarks from dlib on a coco128
photo with a face (keypoint regions children of the face rectangle, unmapped labels never predicted), a bad
image's own error, configs it refuses, /embed, and a learned skeleton trained from submitted keypoints."""
from __future__ import annotations

import pytest

from backends.adapters.keypoints import KeypointsAdapter
from backends.app import create_app
from backends.base import LabeledTask
from backends.config import Settings
from backends.exceptions import NotEnoughData
from backends.media import MediaFetcher
from backends.regions_keypoints import KeypointWriter, annotated_instances, skeletons
from bench.keypoints_shapes import LABELS, make_samples
from keypoints.types import Instance, Keypoint
from tests.backends.protocol import predict

FACES = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="Face"/><Label value="Person"/></RectangleLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="nose_tip"/><Label value="Left eye"/>
    <Label value="tip" predicted_values="30"/><Label value="pupil"/></KeyPointLabels></View>"""
NO_BOX = """<View><Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image"><Label value="chin"/></KeyPointLabels></View>"""
FIGURES = """<View><Image name="image" value="$image"/>
  <KeyPointLabels name="kp" toName="image"><Label value="red"/><Label value="green"/><Label value="blue"/>
  </KeyPointLabels></View>"""


@pytest.fixture
def settings(tmp_path, weights_dir, datasets_dir):
    return Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                    local_roots=(tmp_path, datasets_dir))


@pytest.fixture
def client(settings):
    return create_app("keypoints", settings).test_client()


@pytest.fixture
def face_photo(datasets_dir):
    return str(datasets_dir / "coco128" / "images" / "train2017" / "000000000459.jpg")


def test_setup_refuses_what_it_cannot_serve(client):
    assert client.post("/setup", json={"project": "5.1", "schema": FACES}).status_code == 200
    smart = FACES.replace('<KeyPointLabels name="kp"', '<KeyPointLabels name="kp" smart="true"')
    r = client.post("/setup", json={"project": "5.1", "schema": smart})
    assert r.status_code == 400 and "smart" in r.json["error"]
    r = client.post("/setup", json={"project": "5.1", "schema": FACES.replace('name="kp"', 'name="kp" '
                                                                               'model_score_threshold="x"')})
    assert r.status_code == 400 and "model_score_threshold" in r.json["error"]
    r = client.post("/setup", json={"project": "5.1", "schema": FACES, "extra_params": {"guard_metric": "map"}})
    assert r.status_code == 400 and "guard_metric" in r.json["error"]


def test_face_landmarks_are_keypoint_regions_of_the_face_box(client, face_photo, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    tasks = [{"id": 1, "data": {"image": face_photo}}, {"id": 2, "data": {"image": str(bad)}}]
    face, broken = predict(client, tasks, FACES, "5.1")["results"]
    assert "task 2" in broken["error"] and "result" not in broken
    boxes = [r for r in face["result"] if r["type"] == "rectanglelabels"]
    points = [r for r in face["result"] if r["type"] == "keypointlabels"]
    assert len(boxes) == 1 and boxes[0]["value"]["rectanglelabels"] == ["Face"] and boxes[0]["from_name"] == "box"
    assert sorted(p["value"]["keypointlabels"][0] for p in points) == ["Left eye", "nose_tip", "tip"]  # no "pupil"
    box = boxes[0]["value"]
    for p in points:
        assert p["parentID"] == boxes[0]["id"] and p["from_name"] == "kp" and p["to_name"] == "image"
        assert box["x"] - 5 <= p["value"]["x"] <= box["x"] + box["width"] + 5
        assert box["y"] - 5 <= p["value"]["y"] <= box["y"] + box["height"] + 5
        assert p["original_width"] == 516 and p["value"]["width"] > 0 and 0.9 < p["score"] <= 1
    nose = next(p for p in points if p["value"]["keypointlabels"] == ["nose_tip"])
    tip = next(p for p in points if p["value"]["keypointlabels"] == ["tip"])
    assert nose["value"]["x"] == tip["value"]["x"]  # predicted_values="30" is the nose tip
    assert face["score"] == boxes[0]["score"]
    bare = predict(client, tasks[:1], NO_BOX, "5.2")["results"][0]["result"]
    assert [r["type"] for r in bare] == ["keypointlabels"] and "parentID" not in bare[0]


def test_nothing_is_predicted_for_a_skeleton_before_training(client, face_photo):
    answer = predict(client, [{"id": 1, "data": {"image": face_photo}}], FIGURES, "5.3")["results"][0]
    assert answer["result"] == [] and answer["score"] == 0.0


def test_embed_returns_the_detector_features(client, face_photo):
    tasks = [{"id": 1, "data": {"image": face_photo}}, {"id": 2, "data": {"image": "/nowhere.jpg"}}]
    r = client.post("/embed", json={"tasks": tasks, "project": "5.1", "label_config": FACES})
    assert r.status_code == 200, r.json
    vector, missing = r.json["embeddings"]
    assert len(vector) > 100 and missing is None and "task 2" in r.json["errors"][1]


def test_annotations_read_back_into_instances():
    s = skeletons(FACES)[0]
    a = Instance([Keypoint("nose_tip", 50, 40), Keypoint("pupil", 45, 30)], 0.9, (30, 20, 70, 60))
    b = Instance([Keypoint("nose_tip", 150, 40)], 0.8, (130, 20, 170, 60))
    items = KeypointWriter(s.control, s.rect, "Face").items(a, 200, 100) + \
        KeypointWriter(s.control, s.rect, "Person").items(b, 200, 100)
    items.append({"from_name": "kp", "type": "keypointlabels",
                  "value": {"x": 10, "y": 10, "keypointlabels": ["elbow"]}})  # a label the config lost
    items.append({"from_name": "kp", "type": "keypointlabels", "value": {"x": "?", "keypointlabels": ["chin"]}})
    instances, unknown, rect_labels = annotated_instances(items, s.control, s.rect, 200, 100)
    assert unknown == {"elbow": 1} and rect_labels == ["Face", "Person"]
    assert [[(p.label, round(p.x), round(p.y)) for p in i.points] for i in instances] == \
        [[("nose_tip", 50, 40), ("pupil", 45, 30)], [("nose_tip", 150, 40)]]
    for item in items:
        item.pop("parentID", None)  # no parents: grouped by the smallest rectangle that holds the point
    assert len(annotated_instances(items, s.control, s.rect, 200, 100)[0]) == 2
    loose = [i for i in items if i["type"] == "keypointlabels"]
    assert annotated_instances(loose, s.control, s.rect, 200, 100) is None  # two noses, no boxes: ambiguous


def _figure_tasks(folder, n):
    """Synthetic figures as annotated tasks, the points written as Label Studio's keypoint regions."""
    s = skeletons(FIGURES)[0]
    out = []
    for i, smp in enumerate(make_samples(folder, n)):
        result = KeypointWriter(s.control).items(smp.instances[0], smp.width, smp.height)
        out.append(LabeledTask(i + 1, {"image": str(smp.image)}, result))
    return out


@pytest.mark.slow
def test_submitted_keypoints_train_a_served_skeleton(settings, tmp_path, face_photo):
    backend, media = KeypointsAdapter(settings), MediaFetcher(settings)
    base = backend.load_model(None)
    examples = _figure_tasks(tmp_path / "fig", 8)
    tiny = {"epochs": 1, "imgsz": 160, "batch": 4, "min_train_images": 4}
    with pytest.raises(NotEnoughData, match="face landmark"):
        backend.fit(examples, NO_BOX, base, tmp_path / "v0", params=tiny, media=media)
    with pytest.raises(NotEnoughData, match="8 annotated images, need 20"):
        backend.fit(examples, FIGURES, base, tmp_path / "v0", params={**tiny, "min_train_images": 20}, media=media)
    result = backend.fit(examples, FIGURES, base, tmp_path / "v1", params=tiny, media=media)
    assert result.publish, result.reason
    assert result.metrics["kp"]["labels"] == LABELS and result.n_examples == 8
    model = backend.load_model(tmp_path / "v1")
    tasks = [{"id": ex.task_id, "data": ex.data} for ex in examples[:2]]
    after = backend.predict(model, tasks, FIGURES, params={"model_score_threshold": 0.0,
                                                           "model_point_threshold": 0.0, "imgsz": 160}, media=media)
    labels = {r["value"]["keypointlabels"][0] for p in after for r in p.result}
    assert labels == set(LABELS) and all(0 <= p.score <= 1 for p in after)
