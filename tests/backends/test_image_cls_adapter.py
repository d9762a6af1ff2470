"""The image classification backend through the HTTP protocol (Flask's test client) with the real COCO YOLOv8n
weights: base predictions only for classes the detector knows, top-k in the result, a bad image's own error,
/embed, and training on coco128 labels into a version that predicts a class the detector does not have."""
from __future__ import annotations

from pathlib import Path

import pytest
import ultralytics

from backends.adapters.image_cls import ImageClassificationAdapter
from backends.app import create_app
from backends.base import LabeledTask
from backends.config import Settings
from backends.media import MediaFetcher
from ops.sample_data import coco128_samples
from tests.backends.protocol import predict

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"  # a bus and four persons

SINGLE = """<View><Image name="image" value="$image"/>
  <Choices name="kind" toName="image" choice="single">
    <Choice value="Bus"/><Choice value="Human" predicted_values="person"/><Choice value="Kitchen"/>
  </Choices></View>"""
MULTI = SINGLE.replace('choice="single"', 'choice="multiple"')
TAXONOMY = """<View><Image name="image" value="$image"/>
  <Taxonomy name="tax" toName="image"><Choice value="Vehicle"><Choice value="bus"/><Choice value="car"/></Choice>
  <Choice value="Other"/></Taxonomy></View>"""


@pytest.fixture
def settings(tmp_path, weights_dir, datasets_dir):
    return Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                    local_roots=(tmp_path, BUS.parent, datasets_dir))


@pytest.fixture
def client(settings):
    return create_app("image_cls", settings).test_client()


def test_setup_checks_the_config_and_the_params(client):
    assert client.post("/setup", json={"project": "3.1", "schema": SINGLE}).status_code == 200
    text = '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="A"/></Choices></View>'
    r = client.post("/setup", json={"project": "3.1", "schema": text})
    assert r.status_code == 400 and "<Image>" in r.json["error"]
    r = client.post("/setup", json={"project": "3.1", "schema": SINGLE, "extra_params": {"top_k": 0}})
    assert r.status_code == 400 and "top_k" in r.json["error"]
    outside = SINGLE.replace('choice="single"', 'choice="single" model_path="/etc/passwd"')
    r = client.post("/setup", json={"project": "3.1", "schema": outside})
    assert r.status_code == 400 and "model_path" in r.json["error"]


def test_base_predictions_name_only_known_classes_with_their_top_k(client, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    tasks = [{"id": 1, "data": {"image": str(BUS)}}, {"id": 2, "data": {"image": str(bad)}},
             {"id": 3, "data": {}}]
    first, broken, missing = predict(client, tasks, SINGLE, "3.1")["results"]
    item = first["result"][0]
    assert item["value"]["choices"] in (["Bus"], ["Human"])
    top = item["value"]["top_k"]
    assert {t["label"] for t in top} == {"Bus", "Human"}  # "Kitchen" is unknown to the detector: never named
    assert top[0]["score"] >= top[1]["score"] > 0.5
    assert 0 <= first["score"] <= 1
    assert "task 2" in broken["error"] and "result" not in broken
    assert "task 3" in missing["error"] and "image" in missing["error"]
    multi = predict(client, tasks[:1], MULTI, "3.2")["results"][0]["result"][0]
    assert sorted(multi["value"]["choices"]) == ["Bus", "Human"]
    r = client.post("/predict", json={"tasks": tasks[:1], "project": "3.1", "label_config": SINGLE,
                                      "params": {"top_k": "many"}})
    assert r.status_code == 400 and "top_k" in r.json["error"]
    one = predict(client, tasks[:1], SINGLE.replace("<Choices", "<Choices top_k='1'"), "3.3")
    assert len(one["results"][0]["result"][0]["value"]["top_k"]) == 2  # a tag attribute is not a param
    tax = predict(client, tasks[:1], TAXONOMY, "3.4")["results"][0]["result"][0]
    assert tax["type"] == "taxonomy" and tax["value"]["taxonomy"] == [["Vehicle", "bus"]]


def test_embed_returns_the_image_features(client):
    tasks = [{"id": 1, "data": {"image": str(BUS)}}, {"id": 2, "data": {"image": "/nowhere.jpg"}}]
    r = client.post("/embed", json={"tasks": tasks, "project": "3.1", "label_config": SINGLE})
    assert r.status_code == 200, r.json
    vector, missing = r.json["embeddings"]
    assert len(vector) == 256 and abs(sum(v * v for v in vector) - 1) < 1e-3
    assert missing is None and "task 2" in r.json["errors"][1] and r.json["errors"][0] is None


def _dominant(sample) -> str:
    """The class with the most box area in a coco128 image."""
    area: dict[str, float] = {}
    for o in sample.objects:
        area[o.cls] = area.get(o.cls, 0.0) + (o.xyxy[2] - o.xyxy[0]) * (o.xyxy[3] - o.xyxy[1])
    return max(area, key=area.get)


@pytest.mark.slow
def test_training_learns_a_class_the_detector_does_not_know(settings, datasets_dir, tmp_path):
    """Animals vs vehicles vs people on coco128, where "Animal" maps to no detector class: before training it is
    never predicted; the trained version predicts it and is published over the base predictions."""
    groups = {"person": "Person", "car": "Vehicle", "bus": "Vehicle", "truck": "Vehicle", "motorcycle": "Vehicle",
              "dog": "Animal", "cat": "Animal", "horse": "Animal", "elephant": "Animal", "giraffe": "Animal",
              "zebra": "Animal", "bear": "Animal", "bird": "Animal", "cow": "Animal", "sheep": "Animal"}
    config = """<View><Image name="image" value="$image"/><Choices name="kind" toName="image">
      <Choice value="Person"/><Choice value="Vehicle" predicted_values="car,bus,truck,motorcycle"/>
      <Choice value="Animal"/></Choices></View>"""
    examples = []
    for i, s in enumerate(coco128_samples(datasets_dir)):
        if s.objects and _dominant(s) in groups:
            examples.append(LabeledTask(i + 1, {"image": str(s.image)}, [
                {"from_name": "kind", "to_name": "image", "type": "choices",
                 "value": {"choices": [groups[_dominant(s)]]}}]))
    examples[-1].result[0]["value"]["choices"] = ["Plant"]  # a label the config does not have: skipped
    backend, media = ImageClassificationAdapter(settings), MediaFetcher(settings)
    base = backend.load_model(None)
    test, train = examples[:12], examples[12:]
    tasks = [{"id": ex.task_id, "data": ex.data} for ex in test]
    before = backend.predict(base, tasks, config, params={}, media=media)
    assert all(r["value"]["choices"] != ["Animal"] and all(t["label"] != "Animal" for t in r["value"]["top_k"])
               for p in before for r in p.result)
    result = backend.fit(train, config, base, tmp_path / "v1", params={"imgsz": 320}, media=media)
    assert result.publish, result.reason
    assert result.metrics["skipped_unknown_labels"] == {"Plant": 1}
    assert result.metrics["kind"]["accuracy"] >= result.metrics["kind"]["base_accuracy"]
    model = backend.load_model(tmp_path / "v1")
    assert model.classifiers["kind"].imgsz == 320
    after = backend.predict(model, tasks, config, params={}, media=media)  # features at the head's own size
    truth = [ex.result[0]["value"]["choices"][0] for ex in test]
    got = [p.result[0]["value"]["choices"][0] for p in after]
    assert "Animal" in got and sum(g == t for g, t in zip(got, truth)) >= 8, (got, truth)
    again = backend.fit(train, config, model, tmp_path / "v2", params={"imgsz": 320}, media=media)
    assert again.metrics["kind"]["served_new_examples"] == 0  # the served head saw them all: no biased comparison
