"""The text backend end to end: a real Label Studio calls a real backend process; training runs on an RQ worker
against a real redis-server; predictions come back into Label Studio and sort its task list by uncertainty."""
from __future__ import annotations

import base64
import json

import pytest
import requests
from label_studio_sdk import LabelStudio

from ops.sample_data import read_trec
from ops.services import wait_until
from tests.e2e.label_studio import predictions, retrieve_predictions

pytestmark = pytest.mark.e2e

LABELS = {"ABBR": "Abbreviation", "ENTY": "Entity", "DESC": "Description", "HUM": "Human", "LOC": "Location",
          "NUM": "Numeric"}
CONFIG = ('<View><Text name="question" value="$question"/><Choices name="topic" toName="question" choice="single">'
          + "".join(f'<Choice value="{v}"/>' for v in LABELS.values()) + "</Choices></View>")
USER, PASSWORD = "label-studio", "backend-pass-e2e"


def _trec(datasets_dir, n_train: int, n_test: int):
    questions, coarse = read_trec(datasets_dir / "text/trec/TREC_10.label")
    rows = [(LABELS[c], q) for q, c in zip(questions, coarse)]
    train, test, per_class = [], [], {}
    for label, q in rows:  # balanced training set: every class gets examples
        if per_class.get(label, 0) < n_train // len(LABELS):
            per_class[label] = per_class.get(label, 0) + 1
            train.append((label, q))
        elif len(test) < n_test:
            test.append((label, q))
    return train, test


def test_label_studio_drives_the_text_backend(label_studio, redis_server, start_backend, datasets_dir):
    backend = start_backend("text_cls", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY="12", BASIC_AUTH_USER=USER,
                            BASIC_AUTH_PASS=PASSWORD)
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    train, test = _trec(datasets_dir, n_train=36, n_test=30)
    project = client.projects.create(title="e2e text", label_config=CONFIG)
    client.projects.import_tasks(project.id, request=[{"question": q} for _, q in train + test])
    tasks = {t.data["question"]: t.id for t in client.tasks.list(project=project.id)}
    assert len(tasks) == len(train) + len(test)

    # Connecting makes Label Studio call /health and /setup (with basic auth); a wrong password is refused.
    with pytest.raises(Exception):
        client.ml.create(project=project.id, url=backend.url, title="bad", auth_method="BASIC_AUTH",
                         basic_auth_user=USER, basic_auth_pass="wrong")
    ml = client.ml.create(project=project.id, url=backend.url, title="labelloop text", auth_method="BASIC_AUTH",
                          basic_auth_user=USER, basic_auth_pass=PASSWORD, is_interactive=False)
    assert client.ml.get(ml.id).state == "CO", logs()
    assert "/setup" in backend.log() and PASSWORD not in backend.log()
    # Label Studio creates the backend's webhook without headers; the basic auth goes into them.
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    hooks = [h for h in client.webhooks.list(project=project.id) if h.url.startswith(backend.url)]
    assert hooks, "Label Studio did not create the ML backend webhook"
    for hook in hooks:
        client.webhooks.update(hook.id, headers={"Authorization": auth})

    # Pre-annotations from the first task, before any label exists (zero-shot).
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    preds = predictions(client, project.id)
    assert all(len(p) == 1 for p in preds.values()), preds
    first = next(iter(preds.values()))[0]
    assert first["model_version"] == "text_cls-base" and 0 <= first["score"] <= 1
    assert first["result"][0]["from_name"] == "topic" and first["result"][0]["value"]["choices"][0] in LABELS.values()

    # Annotators submit labels; every 12 annotations trigger training on the RQ worker.
    for label, q in train:
        client.annotations.create(tasks[q], result=[{"from_name": "topic", "to_name": "question", "type": "choices",
                                                      "value": {"choices": [label]}}], was_cancelled=False)
    health = lambda: requests.get(f"{backend.url}/health", params={"project": project.id}, timeout=10).json()  # noqa
    version = wait_until("a trained version", lambda: health()["model_version"] != "text_cls-base"
                    and health()["model_version"], 240, logs)
    assert version.startswith("text_cls-v")
    jobs = requests.get(f"{backend.url}/jobs", params={"project": project.id}, auth=(USER, PASSWORD), timeout=10)
    assert any(j["status"] == "succeeded" for j in jobs.json()["jobs"]), jobs.text
    # Training also read the tasks nobody has annotated (for self-training): the 30 test questions at least, the
    # 36 - 12 training questions not yet annotated at most.
    opened = [j["result"]["metrics"]["question"]["open_texts"] for j in jobs.json()["jobs"]
              if (j.get("result") or {}).get("metrics")]
    assert opened and all(30 <= n <= 30 + 36 - 12 for n in opened), jobs.text

    # START_TRAINING from Label Studio's "Start training" also reaches the backend: as a job of its own, or
    # joined to the one still queued from the annotations above.
    client.ml.train(ml.id)
    wait_until("a START_TRAINING job", lambda: any(
        {j["reason"], *j["joined"]} & {"START_TRAINING", "train endpoint"} for j in requests.get(
            f"{backend.url}/jobs", params={"project": project.id}, auth=(USER, PASSWORD), timeout=10).json()["jobs"]),
        60, logs)
    version = wait_until("training to settle", lambda: all(
        j["status"] not in ("queued", "running") for j in requests.get(
            f"{backend.url}/jobs", params={"project": project.id}, auth=(USER, PASSWORD), timeout=10).json()["jobs"])
        and health()["model_version"], 240, logs)

    # The new version is served: Label Studio picks it up (through /setup) and predicts the tasks again. Sorting by
    # score counts only predictions of the project's model version, which can be set once predictions of it exist.
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    client.projects.update(project.id, model_version=version)
    unlabeled = {tasks[q]: label for label, q in test}
    preds = predictions(client, project.id)
    newest = {tid: next(p for p in preds[tid] if p["model_version"] == version) for tid in unlabeled}
    accuracy = sum(p["result"][0]["value"]["choices"][0] == unlabeled[tid] for tid, p in newest.items()) / len(newest)
    assert accuracy >= 0.5, accuracy

    # "Lowest score first" in the Data Manager puts the least confident unlabeled task on top.
    query = {"ordering": ["tasks:predictions_score"],
             "filters": {"conjunction": "and", "items": [{"filter": "filter:tasks:total_annotations",
                                                          "operator": "equal", "type": "Number", "value": 0}]}}
    ordered = [t.id for t in client.tasks.list(project=project.id, query=json.dumps(query))]
    assert set(ordered) == set(unlabeled)
    least = min(newest, key=lambda tid: newest[tid]["score"])
    assert ordered[0] == least
    scores = [newest[tid]["score"] for tid in ordered]
    assert scores == sorted(scores)


FOUR = {"HUM": "Human", "LOC": "Location", "NUM": "Numeric", "DESC": "Description"}
FOUR_CONFIG = ('<View><Text name="question" value="$question"/><Choices name="topic" toName="question" '
               'choice="single">' + "".join(f'<Choice value="{v}"/>' for v in FOUR.values()) + "</Choices></View>")


def test_labels_of_two_classes_keep_the_others_and_a_worse_head_is_rejected(label_studio, redis_server,
                                                                            start_backend, datasets_dir):
    """12 labels of 2 of 4 classes once erased the other 2 (recall 0.80 / 0.45 -> 0.00); text_cls had no guard."""
    backend = start_backend("text_cls", worker=True, REDIS_URL=redis_server.url, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY="1000")
    logs = lambda: backend.log() + "\n--- worker ---\n" + backend.worker.log()  # noqa: E731
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    questions, coarse = read_trec(datasets_dir / "text/trec/TREC_10.label")
    rows = [(FOUR[c], q) for q, c in zip(questions, coarse) if c in FOUR]
    train = [r for label in ("Numeric", "Description") for r in [r for r in rows if r[0] == label][:6]]
    test = [r for label in FOUR.values() for r in [r for r in rows if r[0] == label and r not in train][:12]]
    project = client.projects.create(title="e2e text forgetting", label_config=FOUR_CONFIG)
    client.projects.import_tasks(project.id, request=[{"question": q} for _, q in train + test])
    tasks = {t.data["question"]: t.id for t in client.tasks.list(project=project.id)}
    ml = client.ml.create(project=project.id, url=backend.url, title="labelloop text", is_interactive=False)
    health = lambda: requests.get(f"{backend.url}/health", params={"project": project.id}, timeout=10).json()  # noqa
    jobs = lambda: requests.get(f"{backend.url}/jobs", params={"project": project.id}, timeout=10).json()["jobs"]  # noqa

    def chosen(version: str) -> dict[str, str]:
        """The label each test task's prediction of `version` chose, after Label Studio asked the backend."""
        retrieve_predictions(label_studio.url, label_studio.token, project.id)
        preds = predictions(client, project.id)
        return {label + "|" + q: next(p for p in preds[tasks[q]] if p["model_version"] == version)["result"][0]
                ["value"]["choices"][0] for label, q in test}

    def recall(answers: dict[str, str], label: str) -> float:
        hits = [answer == label for key, answer in answers.items() if key.split("|", 1)[0] == label]
        return sum(hits) / len(hits)

    def train_and_wait(n_jobs: int) -> dict:
        client.ml.train(ml.id)
        wait_until("training to finish", lambda: len(jobs()) >= n_jobs and all(
            j["status"] not in ("queued", "running") for j in jobs()), 240, logs)
        job = jobs()[0]
        assert job["status"] == "succeeded", (job, logs()[-3000:])
        return job["result"]

    before = chosen("text_cls-base")
    for label, q in train:
        client.annotations.create(tasks[q], result=[{"from_name": "topic", "to_name": "question", "type": "choices",
                                                      "value": {"choices": [label]}}], was_cancelled=False)
    result = train_and_wait(1)
    assert result["status"] == "published", result
    version = health()["model_version"]
    assert version == "text_cls-v1"
    after = chosen(version)
    for label in ("Human", "Location"):
        assert recall(before, label) > 0.3, (label, before)
        assert recall(after, label) >= 0.75 * recall(before, label), (label, recall(before, label), after)

    # A head that cannot learn (C tiny, no zero-shot), served alone (no centroids), from the project's extra params:
    # the guard keeps it out. (With its centroids it is not worse: they learn from the labels.)
    client.ml.update(ml.id, url=backend.url, project=project.id,
                     extra_params={"C": 0.0001, "prior_weight": 0, "centroids": False})
    result = train_and_wait(2)
    assert result["status"] == "rejected" and "below the served version's" in result["reason"], result
    assert health()["model_version"] == "text_cls-v1"  # the served version stays
    listed = requests.get(f"{backend.url}/versions", params={"project": project.id}, timeout=10).json()
    rejected = [v for v in listed["versions"][str(project.id)] if v["status"] == "rejected"]
    assert rejected and "below the served version's" in rejected[0]["reason"], listed
    guard = rejected[0]["metrics"]["question"]["topic"]["guard"]
    assert guard["worse"] and guard["candidate"]["known_accuracy"] < guard["served"]["known_accuracy"]
    assert listed["current"][str(project.id)] == "text_cls-v1"
