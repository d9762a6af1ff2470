"""The HTTP protocol through Flask's test client, with the real text backend and real MiniLM weights."""
from __future__ import annotations

import base64
import logging
import time

import pytest

from backends.app import create_app
from backends.config import Settings
from tests.samples import sentiment_examples

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive" predicted_values="good,great"/><Choice value="Negative" predicted_values="bad,awful"/>
  </Choices>
  <Choices name="flags" toName="text" choice="multiple"><Choice value="Food"/><Choice value="Service"/></Choices>
</View>"""
TAXONOMY = """<View><Text name="text" value="$text"/>
  <Taxonomy name="tax" toName="text"><Choice value="Animal"><Choice value="Cat"/><Choice value="Dog"/></Choice>
  <Choice value="Vehicle"><Choice value="Car"/></Choice></Taxonomy></View>"""
IMAGE_CONFIG = ('<View><Image name="img" value="$image"/><RectangleLabels name="b" toName="img">'
                '<Label value="Car"/></RectangleLabels></View>')
PASSWORD = "pa55-word-xyz"


@pytest.fixture
def settings(tmp_path, weights_dir):
    return Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                    label_studio_url="http://127.0.0.1:9", api_key="legacy-token-123", retrain_every=2)


@pytest.fixture
def client(settings):
    return create_app("text_cls", settings).test_client()


def _tasks(*texts):
    return [{"id": i + 1, "data": {"text": t}} for i, t in enumerate(texts)]


def _predict(client, tasks, config=CONFIG, project="7.1700000000", **kw):
    return client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config,
                                         "params": {"context": None}, **kw})


def test_health_and_setup(client):
    r = client.get("/health")
    body = dict(r.json)
    threads = body.pop("threads")
    assert r.status_code == 200 and body == {"status": "UP", "backend": "text_cls", "model": "idle",
                                               "model_version": "text_cls-base",
                                               "measures": ["least_confidence", "margin", "entropy"]}
    assert threads["torch"] >= 1
    r = client.post("/setup", json={"project": "7.1700000000", "schema": CONFIG, "hostname": "http://localhost:8080",
                                    "access_token": "tok", "extra_params": None})
    assert r.status_code == 200 and r.json == {"model_version": "text_cls-base"}


def test_health_reports_the_warm_up_and_missing_weights(settings):
    from backends.adapters.text_cls import TextClassificationAdapter

    app = create_app("text_cls", settings, warm=True)
    c = app.test_client()
    deadline = time.monotonic() + 60
    while (state := c.get("/health").json["model"]) == "loading" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state == "ready"

    class NoWeights(TextClassificationAdapter):
        def load_model(self, version_dir):
            raise FileNotFoundError("all-MiniLM-L6-v2 is not in /nowhere and downloads are off")

    c = create_app(NoWeights(settings), settings).test_client()
    r = _predict(c, _tasks("great food"))
    assert r.status_code == 503 and "all-MiniLM-L6-v2 is not in /nowhere" in r.json["error"]
    r = c.get("/health")
    assert r.status_code == 503 and r.json["status"] == "UNAVAILABLE" and r.json["model"] == "failed"
    assert "cannot be loaded" in r.json["reason"] and "/nowhere" in r.json["reason"]


def test_setup_rejects_a_config_it_cannot_serve(client):
    r = client.post("/setup", json={"project": "7.1", "schema": IMAGE_CONFIG})
    assert r.status_code == 400 and "<Choices>" in r.json["error"] and "<Text>" in r.json["error"]
    r = client.post("/setup", json={"project": "7.1", "schema": "<View><Text name='t'"})
    assert r.status_code == 400 and "could not be parsed" in r.json["error"]


def test_malformed_requests_get_clear_400s(client):
    assert client.post("/predict", data="{not json", content_type="application/json").status_code == 400
    r = client.post("/predict", json={"tasks": "nope", "label_config": CONFIG})
    assert r.status_code == 400 and "tasks" in r.json["error"]
    r = client.post("/setup", json={"project": "not-a-project", "schema": CONFIG})
    assert r.status_code == 400
    assert client.get("/nope").status_code == 404


def test_predict_choices_single_and_multi_with_scores(client):
    r = _predict(client, _tasks("The food was great and the staff lovely", "Awful service, cold soup, never again"))
    assert r.status_code == 200
    body = r.json
    assert body["model_version"] == "text_cls-base" and len(body["results"]) == 2
    for pred in body["results"]:
        assert pred["model_version"] == "text_cls-base" and 0.0 <= pred["score"] <= 1.0
        by_name = {item["from_name"]: item for item in pred["result"]}
        assert set(by_name) == {"sentiment", "flags"}
        assert by_name["sentiment"]["type"] == "choices" and by_name["sentiment"]["to_name"] == "text"
        assert len(by_name["sentiment"]["value"]["choices"]) == 1
        assert set(by_name["flags"]["value"]["choices"]) <= {"Food", "Service"}
        assert pred["score"] == pytest.approx(min(item["score"] for item in pred["result"]))
    first, second = (res["result"][0]["value"]["choices"][0] for res in body["results"])
    assert (first, second) == ("Positive", "Negative")  # zero-shot from label names and predicted_values


def test_taxonomy_predicts_one_path(client):
    r = _predict(client, _tasks("my neighbour's kitten purrs all day"), config=TAXONOMY)
    item = r.json["results"][0]["result"][0]
    assert item["type"] == "taxonomy" and item["value"]["taxonomy"] == [["Animal", "Cat"]]


def test_bad_task_gets_an_error_and_the_rest_of_the_batch_is_predicted(client):
    tasks = _tasks("good", "bad")
    tasks.insert(1, {"id": 99, "data": {"body": "the config reads $text, not $body"}})
    tasks.append({"id": 100, "data": {"text": 12}})
    results = _predict(client, tasks).json["results"]
    assert len(results) == 4
    assert "result" in results[0] and "result" in results[2]
    assert "result" not in results[1] and "task 99 has no field 'text'" in results[1]["error"]
    assert "result" not in results[3] and "not text" in results[3]["error"]


def test_empty_task_list_and_thousand_tasks(client):
    r = _predict(client, [])
    assert r.status_code == 200 and r.json["results"] == []
    texts = [f"review number {i}: the {'soup' if i % 2 else 'waiter'} was {'great' if i % 3 else 'bad'}"
             for i in range(1000)]
    r = _predict(client, _tasks(*texts))
    assert r.status_code == 200 and len(r.json["results"]) == 1000
    assert all("result" in p for p in r.json["results"])


def test_basic_auth_protects_everything_but_health(settings, caplog):
    app = create_app("text_cls", settings.with_overrides(basic_auth_user="ls", basic_auth_pass=PASSWORD))
    c = app.test_client()
    good = {"Authorization": "Basic " + base64.b64encode(f"ls:{PASSWORD}".encode()).decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ls:guess").decode()}
    with caplog.at_level(logging.DEBUG):
        assert c.get("/health").status_code == 200
        assert c.post("/setup", json={"project": "1.1", "schema": CONFIG}).status_code == 401
        assert c.post("/setup", json={"project": "1.1", "schema": CONFIG}, headers=bad).status_code == 401
        assert c.post("/setup", json={"project": "1.1", "schema": CONFIG}, headers=good).status_code == 200
        assert c.get("/metrics").status_code == 401
    assert PASSWORD not in caplog.text and "legacy-token-123" not in caplog.text


def test_new_version_is_served_without_restart_and_rollback(client, settings, tmp_path):
    app = client.application
    store, backend = app.config["STORE"], app.config["BACKEND"]
    staging = store.stage(7)
    result = backend.fit(sentiment_examples(), CONFIG, None, staging)
    assert result.metrics["text"]["sentiment"]["mode"] == "trained"
    store.publish(7, staging, {"n_examples": result.n_examples, "metrics": result.metrics})
    r = _predict(client, _tasks("the pizza was delicious"))
    assert r.json["model_version"] == "text_cls-v1"
    assert r.json["results"][0]["result"][0]["value"]["choices"] == ["Positive"]
    assert client.post("/setup", json={"project": "7.1", "schema": CONFIG}).json["model_version"] == "text_cls-v1"
    # a broken version is not served: the last good one stays
    broken = store.stage(7)
    (broken / "field-text").mkdir()
    store.publish(7, broken, {"n_examples": 0, "metrics": {}})
    assert _predict(client, _tasks("fine")).json["model_version"] == "text_cls-v1"
    store.rollback(7, "v1")
    assert _predict(client, _tasks("fine")).json["model_version"] == "text_cls-v1"
    assert client.get("/health?project=7").json["model_version"] == "text_cls-v1"


def test_unknown_labels_in_annotations_are_skipped_when_training(client):
    backend = client.application.config["BACKEND"]
    examples = sentiment_examples()
    examples[0].result[0]["value"]["choices"] = ["Neutral"]  # the config no longer has it
    result = backend.fit(examples, CONFIG, None, client.application.config["STORE"].stage(3))
    assert result.metrics["text"]["skipped_unknown_labels"] == {"Neutral": 1}


def _wait_job(client, project, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = client.get(f"/jobs?project={project}").json["jobs"]
        if jobs and jobs[0]["status"] in ("succeeded", "failed"):
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"no finished job: {jobs}")


def test_webhooks_count_and_training_failure_keeps_served_model(client):
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 5}}).json["status"] == "ignored"
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 5, "label_config": CONFIG},
             "annotation": {"id": 1, "project": 5}, "task": {"id": 1}}
    r = client.post("/webhook", json=event)
    assert r.status_code == 201 and r.json["status"] == "counted"
    # the second annotation reaches RETRAIN_EVERY=2: training starts; Label Studio (port 9) is unreachable
    r = client.post("/webhook", json=event)
    assert r.json["status"] == "queued"
    job = _wait_job(client, 5)
    assert job["status"] == "failed" and "Label Studio" in job["error"] and "legacy-token-123" not in job["error"]
    health = client.get("/health?project=5").json
    assert health["model_version"] == "text_cls-base" and health["last_training_failure"]["error"] == job["error"]
    assert _predict(client, _tasks("ok"), project="5.1").json["model_version"] == "text_cls-base"
    r = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 5}})
    assert r.status_code == 201 and r.json["status"] in ("queued", "coalesced")
    # a project's own retrain_every (the model's extra params in Label Studio) wins over the backend's
    client.post("/setup", json={"project": "6.1", "schema": CONFIG, "extra_params": '{"retrain_every": 3}'})
    answers = [client.post("/webhook", json={**event, "project": {"id": 6}}).json["status"] for _ in range(3)]
    assert answers == ["counted", "counted", "queued"]
    metrics = client.get("/metrics").data.decode()
    assert 'labelloop_http_requests_total{backend="text_cls",endpoint="/webhook",status="201"}' in metrics
    assert 'labelloop_training_jobs_total{backend="text_cls",outcome="failed"}' in metrics
    assert "# TYPE labelloop_training_results_total counter" in metrics
    assert "labelloop_http_request_duration_seconds_bucket" in metrics


def test_embed_gives_one_vector_per_task_and_errors_in_place(client):
    tasks = _tasks("the soup was cold", "the soup was freezing", "who won the world cup")
    tasks.insert(1, {"id": 50, "data": {}})
    body = client.post("/embed", json={"tasks": tasks, "project": "7.1", "label_config": CONFIG}).json
    vectors, errors = body["embeddings"], body["errors"]
    assert len(vectors) == 4 and vectors[1] is None and "task 50" in errors[1]
    import numpy as np

    a, b, c = (np.array(vectors[i]) for i in (0, 2, 3))
    assert a.shape == (384,) and abs(np.linalg.norm(a) - 1) < 1e-3
    assert a @ b > a @ c  # near-duplicates are closer than an unrelated text
    r = client.post("/embed", json={"tasks": tasks, "label_config": IMAGE_CONFIG})
    assert r.status_code == 400


def test_basic_auth_challenge_scheme_case_and_guessing_brake(settings):
    c = create_app("text_cls", settings.with_overrides(basic_auth_user="ls", basic_auth_pass=PASSWORD)).test_client()
    credentials = base64.b64encode(f"ls:{PASSWORD}".encode()).decode()
    r = c.get("/jobs")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert c.get("/jobs", headers={"Authorization": f"basic {credentials}"}).status_code == 200
    bad = {"Authorization": "Basic " + base64.b64encode(b"ls:guess").decode()}
    assert [c.get("/jobs", headers=bad).status_code for _ in range(10)] == [401] * 10
    r = c.get("/jobs", headers={"Authorization": f"Basic {credentials}"})  # right, but too late: the brake holds
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60 and "too many" in r.json["error"]
    other = c.get("/jobs", headers={"Authorization": f"Basic {credentials}"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200  # per client
    assert c.get("/health").status_code == 200


def test_project_tokens_from_setup_are_redacted_in_logs(settings):
    from backends.logs import RedactSecrets

    def redact(text):
        filters = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactSecrets)]
        assert filters
        return filters[0].redact(text)

    c = create_app("text_cls", settings).test_client()
    r = c.post("/setup", json={"project": "3.1", "schema": CONFIG, "access_token": "proj3-token-xyz"})
    assert r.status_code == 200 and redact("GET with proj3-token-xyz") == "GET with ***"
    create_app("text_cls", settings.with_overrides(api_key="other-key-1"))  # a restart reads the stored tokens
    assert redact("proj3-token-xyz other-key-1") == "*** ***"
