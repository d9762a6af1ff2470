"""The asr backend end to end: audio uploaded to a real Label Studio, transcribed by a real backend process,
corrected transcripts submitted as annotations, adaptation trained (in the backend's own thread) and the new
version served back into Label Studio."""
from __future__ import annotations


import pytest
import requests
from label_studio_sdk import LabelStudio

from asr.metrics import wer
from tests.asr.conftest import speak
from tests.asr.test_adapt import NEW, TRAIN
from tests.backends.test_asr_adapter import SEGMENTS, WHOLE
from ops.services import wait_until
from tests.e2e.label_studio import plain, predictions, retrieve_predictions, upload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _tasks(client: LabelStudio, project_id: int) -> dict[str, dict]:
    """Tasks by the uploaded file's name (Label Studio prefixes a random hash and a dash)."""
    out = {}
    for t in client.tasks.list(project=project_id, fields="all"):
        preds = [plain(p) for p in t.predictions or []]
        out[t.data["audio"].rsplit("/", 1)[-1].split("-", 1)[-1]] = {"id": t.id, "audio": t.data["audio"],
                                                                      "predictions": preds}
    return out


def test_label_studio_drives_the_asr_backend(label_studio, start_backend, tmp_path):
    backend = start_backend("asr", worker=False, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token, RETRAIN_EVERY=str(len(TRAIN)))
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = client.projects.create(title="e2e asr", label_config=WHOLE)
    files = {f"train{i}.wav": speak(s, tmp_path / f"train{i}.wav").read_bytes() for i, s in enumerate(TRAIN)}
    files.update({f"new{i}.wav": speak(s, tmp_path / f"new{i}.wav").read_bytes() for i, s in enumerate(NEW[:2])})
    upload(label_studio, project.id, files)
    tasks = _tasks(client, project.id)
    assert set(tasks) == set(files) and all(t["audio"].startswith("/data/upload/") for t in tasks.values())

    ml = client.ml.create(project=project.id, url=backend.url, title="labelloop asr", is_interactive=False)
    assert client.ml.get(ml.id).state == "CO", backend.log()[-3000:]

    # Transcripts of every uploaded file, fetched by the backend from Label Studio with the API key.
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    tasks = _tasks(client, project.id)
    for name, task in tasks.items():
        assert len(task["predictions"]) == 1, (name, task, backend.log()[-3000:])
        pred = task["predictions"][0]
        assert pred["model_version"] == "asr-base" and 0 <= pred["score"] <= 1
        item = pred["result"][0]
        assert item["type"] == "textarea" and item["from_name"] == "transcription" and item["value"]["text"][0]
    base_new = {n: tasks[n]["predictions"][0]["result"][0]["value"]["text"][0] for n in ("new0.wav", "new1.wav")}

    # Annotators correct the transcripts; the RETRAIN_EVERY-th annotation starts training.
    for i, sentence in enumerate(TRAIN):
        client.annotations.create(tasks[f"train{i}.wav"]["id"], was_cancelled=False, result=[
            {"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [sentence]}}])
    health = lambda: requests.get(f"{backend.url}/health", params={"project": project.id}, timeout=10).json()  # noqa
    jobs = lambda: requests.get(f"{backend.url}/jobs", params={"project": project.id},  # noqa: E731
                                timeout=10).json()["jobs"]
    wait_until("training to finish", lambda: jobs() and all(j["status"] not in ("queued", "running") for j in jobs()),
          300, backend.log)
    job = jobs()[0]
    assert job["status"] == "succeeded", job
    result = job["result"]
    print("training:", result)
    assert result["status"] == "published", result  # the data is made so that adaptation helps
    metrics = result["metrics"]
    assert metrics["wer_after"] < metrics["wer_before"] and metrics["vocabulary_size"] >= 3
    assert {"n_rules", "wer_before", "wer_after", "vocabulary_size"} <= set(metrics)
    assert health()["model_version"] == "asr-v1"

    # The new version is served: Label Studio asks again and gets adapted transcripts of the unseen files.
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    tasks = _tasks(client, project.id)
    adapted = {}
    for name in ("new0.wav", "new1.wav"):
        newest = [p for p in tasks[name]["predictions"] if p["model_version"] == "asr-v1"]
        assert newest, tasks[name]
        adapted[name] = newest[0]["result"][0]["value"]["text"][0]
    print("before:", base_new, "after:", adapted)
    refs = [NEW[0], NEW[1]]
    assert wer(refs, list(adapted.values())) < wer(refs, list(base_new.values()))


def test_segment_level_predictions_are_accepted_by_label_studio(label_studio, start_backend, datasets_dir):
    backend = start_backend("asr", worker=False, LABEL_STUDIO_URL=label_studio.url,
                            LABEL_STUDIO_API_KEY=label_studio.token)
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = client.projects.create(title="e2e asr segments", label_config=SEGMENTS)
    clip = datasets_dir / "speech" / "ljspeech" / "wavs" / "LJ001-0001.flac"
    upload(label_studio, project.id, {clip.name: clip})
    client.ml.create(project=project.id, url=backend.url, title="labelloop asr", is_interactive=False)
    retrieve_predictions(label_studio.url, label_studio.token, project.id)
    (preds,) = predictions(client, project.id).values()
    (pred,) = preds
    by_type = {}
    for item in pred["result"]:
        by_type.setdefault(item["type"], []).append(item)
    assert by_type["labels"] and len(by_type["labels"]) == len(by_type["textarea"])
    assert {i["id"] for i in by_type["labels"]} == {i["id"] for i in by_type["textarea"]}
    assert "printing" in " ".join(i["value"]["text"][0] for i in by_type["textarea"]).lower()
    assert 0 < pred["score"] <= 1
