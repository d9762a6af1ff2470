"""The ner backend end to end: a real Label Studio calls a real backend process; spans come back into Label
Studio with exact offsets (emoji, accents, CRLF), annotators' spans train a new version on an RQ worker against a
real redis-server, and the new version predicts the label spaCy did not know."""
from __future__ import annotations

import pytest
import requests
from label_studio_sdk import LabelStudio

from ops.services import wait_until
from tests.e2e.label_studio import predictions, retrieve_predictions

pytestmark = pytest.mark.e2e

CONFIG = ('<View><Labels name="label" toName="text"><Label value="PER"/><Label value="Company" '
          'predicted_values="ORG"/><Label value="Fruit"/></Labels><Text name="text" value="$text"/></View>')
UNICODE = "😀 Angela Merkel met Emmanuel Macron.\r\n\r\nZoë 👩‍👩‍👧 said the board of Microsoft agreed."
FRUITS = ["apple", "banana", "mango", "cherry", "peach", "plum", "pear", "lemon", "grape", "kiwi", "melon", "fig"]


def _fruit_text(fruit: str) -> str:
    return f"Ünïcode 🍎 note\r\nThen John Smith ate a {fruit} quickly."


def _annotation(text: str, fruit: str) -> list[dict]:
    start = text.index(fruit)
    person = text.index("John Smith")
    return [{"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": start, "end": start + len(fruit), "text": fruit, "labels": ["Fruit"]}},
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": person, "end": person + 10, "text": "John Smith", "labels": ["PER"]}}]


def test_label_studio_drives_the_ner_backend(label_studio, redis_server, start_backend):
    backend = start_backend("ner", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY="10")
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = client.projects.create(title="e2e ner", label_config=CONFIG)
    train = [_fruit_text(f) for f in FRUITS[:10]]
    new = "Later 😀 Mary Jones ate a mango quickly."
    client.projects.import_tasks(project.id, request=[{"text": t} for t in [UNICODE, new, *train]])
    tasks = {t.data["text"]: t.id for t in client.tasks.list(project=project.id)}
    ml = client.ml.create(project=project.id, url=backend.url, title="labelloop ner", is_interactive=False)
    assert client.ml.get(ml.id).state == "CO", logs()

    # Spans from the first task, stored by Label Studio with the offsets the backend gave
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    first = preds[tasks[UNICODE]][0]
    assert first["model_version"] == "ner-base" and 0 <= first["score"] <= 1
    spans = {(r["value"]["start"], r["value"]["end"], r["value"]["text"], r["value"]["labels"][0])
             for r in first["result"]}
    for name, label in (("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Microsoft", "Company")):
        start = UNICODE.index(name)  # code points: the emoji before it count one each
        assert (start, start + len(name), name, label) in spans, spans
    assert all(UNICODE[s:e] == text for s, e, text, _ in spans)
    assert not any(r["value"]["labels"][0] == "Fruit" for p in preds.values() for r in p[0]["result"])

    # Annotators mark fruits (spaCy has no such type) and people; 10 annotations start training
    for text in train:
        fruit = next(f for f in FRUITS if f" {f} " in text)
        client.annotations.create(tasks[text], result=_annotation(text, fruit), was_cancelled=False)
    health = lambda: requests.get(f"{backend.url}/health", params={"project": project.id}, timeout=10).json()  # noqa
    version = wait_until("a trained version", lambda: health()["model_version"] != "ner-base"
                         and health()["model_version"], 300, logs)
    assert version.startswith("ner-v")

    # The new version is served: Label Studio asks again and gets the learned label, offsets still exact
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    newest = next(p for p in predictions(client, project.id)[tasks[new]] if p["model_version"] == version)
    found = {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in newest["result"]}
    start = new.index("mango")
    assert (start, start + 5, "Fruit") in found, found
    redo = next(p for p in predictions(client, project.id)[tasks[UNICODE]] if p["model_version"] == version)
    assert all(UNICODE[r["value"]["start"]:r["value"]["end"]] == r["value"]["text"] for r in redo["result"])
