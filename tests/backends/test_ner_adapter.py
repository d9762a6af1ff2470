"""The ner backend through the HTTP protocol (Flask's test client) with the real spaCy pipeline and MiniLM: config
checks, spans with exact offsets in unicode texts, predicted_values, per-task errors, embeddings, and a trained
version that is served."""
from __future__ import annotations

import pytest

from backends.app import create_app
from backends.base import LabeledTask
from backends.config import Settings
from tests.backends.protocol import predict

CONFIG = ('<View><Labels name="label" toName="text"><Label value="PER"/><Label value="Company" '
          'predicted_values="ORG"/><Label value="Fruit"/></Labels><Text name="text" value="$text"/></View>')
TEXT = "😀 Angela Merkel met Emmanuel Macron.\r\n\r\nThe 👩‍👩‍👧 board of Microsoft met in Berlin."


@pytest.fixture
def client(tmp_path, weights_dir):
    settings = Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                        retrain_every=1000)
    return create_app("ner", settings).test_client()


def test_setup_accepts_labels_on_text_and_explains_the_rest(client):
    r = client.post("/setup", json={"project": "3.1", "schema": CONFIG})
    assert r.status_code == 200 and r.json == {"model_version": "ner-base"}
    image = '<View><Image name="i" value="$img"/><Labels name="l" toName="i"><Label value="A"/></Labels></View>'
    r = client.post("/setup", json={"project": "3.1", "schema": image})
    assert r.status_code == 400 and "<Labels>" in r.json["error"] and "<Text>" in r.json["error"]
    r = client.post("/setup", json={"project": "3.1", "schema": CONFIG, "extra_params": {"ner_c": "many"}})
    assert r.status_code == 400 and "ner_c" in r.json["error"]


def test_spans_keep_exact_offsets_labels_scores_and_per_task_errors(client):
    tasks = [{"id": 1, "data": {"text": TEXT}}, {"id": 2, "data": {"other": "x"}}, {"id": 3, "data": {"text": 5}},
             {"id": 4, "data": {"text": ""}}]
    body = predict(client, tasks, CONFIG, "3.1")
    first, missing, not_text, empty = body["results"]
    assert first["model_version"] == "ner-base"
    items = first["result"]
    found = {(i["value"]["text"], i["value"]["labels"][0]) for i in items}
    assert ("Angela Merkel", "PER") in found and ("Microsoft", "Company") in found
    for i in items:
        v = i["value"]
        assert TEXT[v["start"]:v["end"]] == v["text"] and i["type"] == "labels"
        assert i["from_name"] == "label" and i["to_name"] == "text" and 0 <= i["score"] <= 1
        assert v["labels"][0] in ("PER", "Company")  # Berlin's GPE has no label here; Fruit has no spaCy type
    merkel = next(i["value"] for i in items if i["value"]["text"] == "Angela Merkel")
    assert (merkel["start"], merkel["end"]) == (2, 15)  # the emoji is one character
    assert 0 <= first["score"] <= min(i["score"] for i in items)
    assert "result" not in missing and "'text'" in missing["error"]
    assert "result" not in not_text and "not text" in not_text["error"]
    assert empty["result"] == []


def test_bad_uncertainty_is_a_400_naming_it(client):
    r = client.post("/predict", json={"tasks": [{"id": 1, "data": {"text": TEXT}}], "project": "3.1",
                                      "label_config": CONFIG, "params": {"uncertainty": "nonsense"}})
    assert r.status_code == 400 and "uncertainty" in r.json["error"]


def test_embed_gives_one_vector_per_task(client):
    tasks = [{"id": 1, "data": {"text": TEXT}}, {"id": 2, "data": {}}]
    body = client.post("/embed", json={"tasks": tasks, "project": "3.1", "label_config": CONFIG}).json
    assert len(body["embeddings"][0]) == 384 and body["embeddings"][1] is None and body["errors"][1]


FRUITS = ["apple", "banana", "mango", "cherry", "peach", "plum", "pear", "lemon", "grape", "kiwi"]


def _examples() -> list[LabeledTask]:
    out = []
    for i, fruit in enumerate(FRUITS):
        text = f"Ünïcode 🍎 line\r\nThen John Smith ate a {fruit} quickly."
        start = text.index(fruit)
        out.append(LabeledTask(task_id=i + 1, data={"text": text}, annotation_id=i + 1, result=[
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": start, "end": start + len(fruit), "text": fruit, "labels": ["Fruit"]}},
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 22, "end": 32, "text": "John Smith", "labels": ["PER"]}}]))
    out.append(LabeledTask(task_id=99, data={"other": 1}, result=[]))  # no text: skipped
    return out


def test_training_on_spans_publishes_a_version_that_is_served(client):
    app = client.application
    store, backend = app.config["STORE"], app.config["BACKEND"]
    staging = store.stage(3)
    result = backend.fit(_examples(), CONFIG, backend.load_model(None), staging)
    assert result.publish, result.reason
    assert result.n_examples == 10 and result.metrics["skipped"] == 1
    assert result.metrics["learned_labels"] == ["Fruit", "PER"]
    store.publish(3, staging, {"n_examples": result.n_examples, "metrics": result.metrics})
    text = "Later 😀 Mary Jones ate a mango quickly."
    before = predict(client, [{"id": 1, "data": {"text": text}}], CONFIG, "4.1")["results"][0]
    after = predict(client, [{"id": 1, "data": {"text": text}}], CONFIG, "3.1")["results"][0]
    assert before["model_version"] == "ner-base" and after["model_version"] == "ner-v1"
    assert ("mango", "Fruit") in {(i["value"]["text"], i["value"]["labels"][0]) for i in after["result"]}
    assert all(i["value"]["labels"][0] != "Fruit" for i in before["result"])


def test_annotation_spans_are_read_with_their_offsets_or_found_again_by_their_text():
    from backends.labels import find_controls
    from backends.regions_spans import SpanLabels

    writer = SpanLabels.create(find_controls(CONFIG, ("labels",), ("text",))[0])
    text = "😀😀 Angela Merkel and Angela Merkel."
    item = lambda s, e, said, label="PER": {"from_name": "label", "value": {  # noqa: E731
        "start": s, "end": e, "text": said, "labels": [label]}}
    spans = writer.read_spans(text, [
        item(3, 16, "Angela Merkel"),  # code points: taken as they are
        item(24, 37, "Angela Merkel"),  # UTF-16 units (each emoji two): the nearest occurrence of its text
        item(0, 2, "nowhere"),  # its text is not in the task: skipped
        item(3, 16, "Angela Merkel", "Unknown"),  # a label the config does not have: skipped
        {"from_name": "other", "value": {"start": 0, "end": 1, "labels": ["PER"]}}])
    assert [(s.start, s.end, s.label) for s in spans] == [(3, 16, "PER"), (21, 34, "PER")]
