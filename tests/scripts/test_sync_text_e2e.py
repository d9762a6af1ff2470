"""sync.py against a real Label Studio and a real text_cls backend process: setup, import, predict, rank,
status, export and retrain on text projects."""
from __future__ import annotations

import csv
import fcntl
import json
import os

import pytest
import requests

import selection
from ops.sample_data import read_trec
from tests.scripts.conftest import BACKEND_PASS, BACKEND_USER, write_config

pytestmark = pytest.mark.e2e
LABELS = {"LOC": "Location", "HUM": "Human", "NUM": "Numeric", "DESC": "Description"}


@pytest.fixture(autouse=True)
def _backend_pass(monkeypatch):
    monkeypatch.setenv("SYNC_TEST_BACKEND_PASS", BACKEND_PASS)


@pytest.fixture(scope="module")
def trec(datasets_dir) -> list[tuple[str, str]]:
    """(label, question) pairs of the four classes above, from TREC's test set."""
    questions, coarse = read_trec(datasets_dir / "text/trec/TREC_10.label")
    return [(LABELS[c], q) for q, c in zip(questions, coarse) if c in LABELS]


def _state(sdk, project_id: int) -> dict:
    """Everything setup manages, as Label Studio reports it."""
    project = sdk.projects.get(project_id).model_dump(mode="json")
    return {"project": project,
            # Label Studio re-checks a backend's health whenever it lists them, which bumps updated_at
            "ml": [{k: v for k, v in m.model_dump(mode="json").items() if k != "updated_at"}
                   for m in sdk.ml.list(project=project_id)],
            "webhooks": [h.model_dump(mode="json") for h in sdk.webhooks.list(project=project_id)],
            "views": [v.model_dump(mode="json") for v in sdk.views.list(project=project_id)]}


def _tasks(sdk, project_id: int) -> dict[str, object]:
    return {t.data["text"]: t for t in sdk.tasks.list(project=project_id, fields="all")}


def _preds(task, version: str) -> list[dict]:
    return [p if isinstance(p, dict) else p.model_dump() for p in task.predictions or []
            if (p if isinstance(p, dict) else p.model_dump())["model_version"] == version]


def _view_order(sdk, project_id: int, title: str) -> list[int]:
    view = next(v for v in sdk.views.list(project=project_id) if v.data["title"] == title)
    return [t.id for t in sdk.tasks.list(project=project_id, view=view.id)]


def _annotate(sdk, task_id: int, label: str) -> None:
    sdk.annotations.create(task_id, result=[{"from_name": "label", "to_name": "text", "type": "choices",
                                             "value": {"choices": [label]}}], was_cancelled=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory, text_backend, label_studio, sdk, trec):
    """A project set up by sync.py (without help from the tests), with 24 imported questions."""
    from scripts.labelloop_sync.cli import main

    os.environ["SYNC_TEST_BACKEND_PASS"] = BACKEND_PASS
    tmp = tmp_path_factory.mktemp("text-project")
    cfg = write_config(tmp / "project.yaml", "sync text", text_backend.url)
    base = ["--url", label_studio.url, "--api-key", label_studio.token]
    assert main([*base, "setup", "--config", str(cfg)]) == 0
    data = tmp / "questions.jsonl"
    data.write_text("".join(json.dumps({"text": q}) + "\n" for _, q in trec[:24]))
    assert main([*base, "import", "--config", str(cfg), str(data)]) == 0
    project_id = next(p.id for p in sdk.projects.list() if p.title == "sync text")
    return {"id": project_id, "config": cfg, "tmp": tmp}


def test_setup_is_idempotent_and_wires_everything(sync, sdk, project, text_backend, tmp_path):
    before = _state(sdk, project["id"])
    code, out, _ = sync("setup", "--config", project["config"])
    assert code == 0 and "no changes" in out, out
    assert _state(sdk, project["id"]) == before

    p = before["project"]
    assert (p["maximum_annotations"], p["overlap_cohort_percentage"]) == (2, 100)
    assert p["show_collab_predictions"] is True and p["expert_instruction"] == "<p>Pick the answer type.</p>"
    assert p["show_instruction"] is True and '<Choice value="Numeric"/>' in p["label_config"]
    [ml] = before["ml"]
    assert ml["url"] == text_backend.url and ml["auth_method"] == "BASIC_AUTH" and ml["state"] == "CO"
    assert ml["is_interactive"] is False
    hooks = [h for h in before["webhooks"] if h["url"] == text_backend.url + "/webhook"]
    assert len(hooks) == 1 and hooks[0]["headers"]["Authorization"].startswith("Basic ")
    views = {v["data"]["title"]: v["data"] for v in before["views"]}
    assert set(views) == {"Most uncertain first", "Hard (score < 0.3)", "Medium (0.3 <= score < 0.7)",
                          "Easy (score >= 0.7)"}
    assert all(v["ordering"] == ["tasks:predictions_score"] for v in views.values())

    # a change in the file is applied, and only that change
    changed = write_config(tmp_path / "changed.yaml", "sync text", text_backend.url,
                           description="'a new description'")
    code, out, _ = sync("setup", "--config", changed)
    assert code == 0 and "updated project" in out and "description" in out, out
    after = _state(sdk, project["id"])
    assert after["project"]["description"] == "a new description"
    assert after["views"] == before["views"] and after["webhooks"] == before["webhooks"]
    assert sync("setup", "--config", project["config"])[0] == 0


def test_wrong_token_and_invalid_label_config_fail_clearly(label_studio, capsys, project, tmp_path):
    from scripts.labelloop_sync.cli import main

    code = main(["--url", label_studio.url, "--api-key", "0" * 40, "status", "--config", str(project["config"])])
    err = capsys.readouterr().err
    assert code == 1 and "refused the API key (401)" in err and "0" * 40 not in err, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: sync broken\nlabel_config: <View><Choices name='x' toName='nothing'/></View>\n")
    code = main(["--url", label_studio.url, "--api-key", label_studio.token, "setup", "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and "Label Studio answered 400 while creating project" in err and err.count("\n") == 1, err


def test_import_skips_what_is_already_there(sync, sdk, project, trec, tmp_path):
    code, out, _ = sync("import", "--config", project["config"], project["tmp"] / "questions.jsonl")
    assert code == 0 and "imported 0, skipped 24" in out, out
    # CSV: two known questions, two new ones, one of them twice in the file
    rows = [trec[0][1], trec[1][1], trec[30][1], trec[31][1], trec[31][1]]
    path = tmp_path / "more.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["text"], *[[r] for r in rows]])
    code, out, _ = sync("import", "--config", project["config"], path)
    assert code == 0 and "imported 2, skipped 3" in out, out
    # JSON with the {"data": ...} form, keyed by a field
    doc = tmp_path / "tasks.json"
    doc.write_text(json.dumps([{"data": {"text": trec[40][1], "uid": "q40"}}, {"data": {"text": "x", "uid": "q40"}}]))
    code, out, _ = sync("import", "--config", project["config"], doc, "--key", "uid")
    assert code == 0 and "imported 1, skipped 1" in out, out
    assert len(_tasks(sdk, project["id"])) == 27


def test_predict_resumes_after_an_interruption(sync, sdk, project, monkeypatch):
    from scripts.labelloop_sync.backend_client import BackendHTTPClient

    real, calls = BackendHTTPClient.predict, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BackendHTTPClient, "predict", interrupted)
    code, _, err = sync("predict", "--config", project["config"], "--batch-size", "5")
    assert code == 130 and "run it again to continue" in err
    tasks = _tasks(sdk, project["id"])
    assert sum(bool(_preds(t, "text_cls-base")) for t in tasks.values()) == 10  # the two finished batches
    monkeypatch.setattr(BackendHTTPClient, "predict", real)

    code, out, _ = sync("predict", "--config", project["config"], "--limit", "4")
    assert code == 0 and "4 tasks predicted by text_cls-base, 10 already were" in out, out
    code, out, _ = sync("predict", "--config", project["config"], "--batch-size", "8")
    assert code == 0 and f"{len(tasks) - 14} tasks predicted" in out, out
    tasks = _tasks(sdk, project["id"])
    assert all(len(_preds(t, "text_cls-base")) == 1 for t in tasks.values())
    assert all(0 <= _preds(t, "text_cls-base")[0]["score"] <= 1 for t in tasks.values())
    assert sdk.projects.get(project["id"]).model_version == "text_cls-base"
    code, out, _ = sync("predict", "--config", project["config"])
    assert code == 0 and "0 tasks predicted" in out


@pytest.mark.parametrize("strategy", ["least_confidence", "margin"])
def test_rank_puts_the_least_confident_task_first(sync, sdk, project, strategy):
    code, out, _ = sync("rank", "--config", project["config"], "--strategy", strategy)
    assert code == 0 and f"ranked by {strategy}" in out, out
    tasks = _tasks(sdk, project["id"])
    scores = {t.id: _preds(t, "text_cls-base")[0]["score"] for t in tasks.values()}
    assert all(len(_preds(t, "text_cls-base")) == 1 for t in tasks.values()), "re-scored in place"
    order = _view_order(sdk, project["id"], "Most uncertain first")
    assert set(order) == set(scores)
    assert order[0] == min(scores, key=scores.get)
    assert [scores[i] for i in order] == sorted(scores.values())
    # the difficulty tiers split the same tasks by score
    hard = _view_order(sdk, project["id"], "Hard (score < 0.3)")
    easy = _view_order(sdk, project["id"], "Easy (score >= 0.7)")
    medium = _view_order(sdk, project["id"], "Medium (0.3 <= score < 0.7)")
    assert sorted(hard + medium + easy) == sorted(scores)
    assert all(scores[i] < 0.3 for i in hard) and all(scores[i] >= 0.7 for i in easy)


def test_default_rank_writes_its_batch_order_into_the_scores(sync, sdk, project):
    code, out, _ = sync("rank", "--config", project["config"], "--batch", "5")
    assert code == 0 and f"ranked by {selection.DEFAULT}" in out, out
    tasks = _tasks(sdk, project["id"])
    assert all(len(_preds(t, "text_cls-base")) == 1 for t in tasks.values()), "re-scored in place"
    scores = {t.id: _preds(t, "text_cls-base")[0]["score"] for t in tasks.values()}
    ranked = sorted(scores.values())
    # the batch on top in pick order (0, 1e-6, ...), every other task a confidence behind it
    assert ranked[:5] == pytest.approx([i * selection.BATCH_STEP for i in range(5)], abs=1e-9)
    assert ranked[5] >= 5 * selection.BATCH_STEP - 1e-9 and all(0 <= v <= 1 for v in ranked)
    assert _view_order(sdk, project["id"], "Most uncertain first")[:5] == sorted(scores, key=scores.get)[:5]


def test_kcenter_keeps_near_duplicates_off_the_top(sync, sdk, label_studio, text_backend, trec, tmp_path):
    cfg = write_config(tmp_path / "k.yaml", "sync kcenter", text_backend.url)
    assert sync("setup", "--config", cfg)[0] == 0
    questions = [q for _, q in trec[50:62]]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"text": q}) + "\n" for q in questions))
    assert sync("import", "--config", cfg, tmp_path / "q.jsonl")[0] == 0
    assert sync("rank", "--config", cfg, "--strategy", "least_confidence")[0] == 0
    pid = next(p.id for p in sdk.projects.list() if p.title == "sync kcenter")
    first = sdk.tasks.get(_view_order(sdk, pid, "Most uncertain first")[0]).data["text"]
    # five near-copies of the task the model is least sure about
    copies = [first + " ", first.replace("?", " ?"), "So, " + first, first.rstrip("?") + "??", first.lower()]
    (tmp_path / "dups.jsonl").write_text("".join(json.dumps({"text": q}) + "\n" for q in copies))
    assert sync("import", "--config", cfg, tmp_path / "dups.jsonl")[0] == 0
    group = {t.id for t in sdk.tasks.list(project=pid) if t.data["text"] in {first, *copies}}
    assert len(group) == 6

    assert sync("rank", "--config", cfg, "--strategy", "least_confidence")[0] == 0
    plain_top = _view_order(sdk, pid, "Most uncertain first")[:5]
    assert len(group & set(plain_top)) >= 3, "without diversity the copies crowd the top"

    code, out, _ = sync("rank", "--config", cfg, "--strategy", "kcenter", "--batch", "5")
    assert code == 0, out
    top = _view_order(sdk, pid, "Most uncertain first")[:5]
    assert len(group & set(top)) == 1, "k-center keeps one of the near-duplicates on top"
    assert top[0] in group  # and it starts with the least confident
    assert len(set(top)) == 5


def test_status_reports_counts_versions_and_health(sync, project, text_backend):
    code, out, _ = sync("--json", "status", "--config", project["config"])
    assert code == 0
    s = json.loads(out)
    assert s["tasks"] == 27 and s["predicted"] == {"text_cls-base": 27}
    assert s["model_version"] == "text_cls-base"
    [b] = s["backends"]
    assert b["health"] == "UP" and b["model_version"] == "text_cls-base" and b["predicted_tasks"] == 27
    code, out, _ = sync("status", "--config", project["config"])
    assert code == 0 and "serves text_cls-base" in out and "27 tasks" in out


def test_export_completed_tasks_with_agreement(sync, sdk, project, tmp_path):
    tasks = list(_tasks(sdk, project["id"]).values())
    _annotate(sdk, tasks[0].id, "Human")
    _annotate(sdk, tasks[0].id, "Human")  # two annotators agree
    _annotate(sdk, tasks[1].id, "Human")
    _annotate(sdk, tasks[1].id, "Location")  # ... and disagree
    _annotate(sdk, tasks[2].id, "Numeric")
    sdk.annotations.create(tasks[3].id, result=[], was_cancelled=True)  # skipped: not completed

    code, out, _ = sync("export", "--config", project["config"], "--format", "json", "--out", tmp_path / "j")
    assert code == 0, out
    exported = {t["id"]: t for t in json.loads((tmp_path / "j/tasks.json").read_text())}
    assert set(exported) == {tasks[0].id, tasks[1].id, tasks[2].id}
    assert exported[tasks[0].id]["agreement"] == 1.0 and exported[tasks[1].id]["agreement"] == 0.0
    assert exported[tasks[2].id]["agreement"] is None
    report = json.loads((tmp_path / "j/agreement.json").read_text())
    assert report["overlapping"] == 2 and report["mean_agreement"] == 0.5

    code, out, _ = sync("export", "--config", project["config"], "--format", "csv", "--out", tmp_path / "c",
                        "--min-agreement", "0.8")
    assert code == 0 and "dropped 1" in out, out
    rows = list(csv.DictReader(open(tmp_path / "c/tasks.csv")))
    assert {int(r["id"]) for r in rows} == {tasks[0].id, tasks[2].id}
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[tasks[2].id]["label"] == "Numeric" and by_id[tasks[0].id]["agreement"] == "1.0000"

    code, out, _ = sync("--json", "status", "--config", project["config"])
    s = json.loads(out)
    assert s["labeled"] == 3 and s["completed"] == 2 and s["agreement"] == {"tasks": 2, "mean": 0.5}


def test_retrain_fails_visibly_then_trains_and_reranks(sync, sdk, project, trec, tmp_path):
    # too few labels: the job runs but publishes nothing, and that is an error
    code, _, err = sync("retrain", "--config", project["config"], "--timeout", "120")
    assert code == 1 and "published no new version (skipped)" in err, err

    # another run holds the lock
    lock = tmp_path / "retrain.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = sync("retrain", "--config", project["config"], "--lock-file", lock)
    assert code == 3 and "another retrain holds the lock" in err

    # label enough questions (3 per class) and train for real; then the open tasks are re-ranked
    by_text = _tasks(sdk, project["id"])
    per_class: dict[str, int] = {}
    for label, question in trec[:24]:
        task = by_text.get(question)
        if task is None or task.annotations or per_class.get(label, 0) >= 3:
            continue
        _annotate(sdk, task.id, label)
        per_class[label] = per_class.get(label, 0) + 1
    assert min(per_class.values()) >= 2, per_class
    code, out, err = sync("retrain", "--config", project["config"], "--lock-file", lock, "--timeout", "240")
    assert code == 0, err
    assert "trained text_cls-v" in out and "re-ranked" in out, out
    version = out.split("trained ", 1)[1].split()[0]
    assert sdk.projects.get(project["id"]).model_version == version
    order = _view_order(sdk, project["id"], "Most uncertain first")
    scores = {t.id: _preds(t, version)[0]["score"] for t in _tasks(sdk, project["id"]).values()
              if t.id in set(order)}
    assert order and order[0] == min(scores, key=scores.get)


def test_retrain_reports_a_failed_job(sync, sdk, label_studio, text_backend):
    # an image project the text backend cannot train on: the job fails on the backend
    project = sdk.projects.create(title="sync failing", label_config=(
        '<View><Image name="image" value="$image"/><Choices name="c" toName="image">'
        '<Choice value="a"/><Choice value="b"/></Choices></View>'))
    code, _, err = sync("retrain", "--project", project.id, "--backend-url", text_backend.url, "--backend-user",
                        BACKEND_USER, "--backend-password", BACKEND_PASS, "--timeout", "60", "--no-rank")
    assert code == 1 and "training job" in err and "failed" in err, err
    r = requests.get(f"{text_backend.url}/health", params={"project": project.id}, timeout=10).json()
    assert "last_training_failure" in r


def test_retrain_times_out_and_releases_the_lock(sync, sdk, label_studio, weights_dir, redis_url, tmp_path):
    # a backend that queues training in Redis with no RQ worker running: the job stays queued for ever
    from tests.scripts.conftest import start_text_backend

    project = sdk.projects.create(title="sync timeout", label_config=(
        '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
        '<Choice value="a"/><Choice value="b"/></Choices></View>'))
    lock = tmp_path / "retrain.lock"
    with start_text_backend(label_studio, weights_dir, tmp_path / "backend", REDIS_URL=redis_url) as backend:
        code, _, err = sync("retrain", "--project", project.id, "--backend-url", backend.url, "--backend-user",
                            BACKEND_USER, "--backend-password", BACKEND_PASS, "--timeout", "3", "--no-rank",
                            "--lock-file", lock)
        assert code == 4, err
        # one error line after the progress bar, no traceback
        message = err.rstrip("\n").split("\n")[-1].split("\r")[-1]
        assert message.startswith("sync.py retrain: error: training job ") and "did not finish within 3s" in message
        assert "Traceback" not in err
        jobs = requests.get(backend.url + "/jobs", params={"project": project.id}, auth=(BACKEND_USER, BACKEND_PASS),
                            timeout=10).json()["jobs"]
        assert [j["status"] for j in jobs] == ["queued"], jobs
        assert jobs[0]["id"] in err
    # the lock is free again: a second run (or cron's next one) could take it
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
