"""Label Studio calls the end-to-end tests share."""
from __future__ import annotations

import mimetypes
from pathlib import Path

import requests
from label_studio_sdk import LabelStudio


def plain(prediction) -> dict:
    """A task's prediction as a dict (the SDK gives dicts or models, depending on the call)."""
    return prediction if isinstance(prediction, dict) else prediction.model_dump()


def predictions(client: LabelStudio, project_id: int) -> dict[int, list[dict]]:
    """Every task's predictions, by task id."""
    return {t.id: [plain(p) for p in t.predictions or []] for t in client.tasks.list(project=project_id, fields="all")}


def retrieve_predictions(ls_url: str, token: str, project_id: int) -> None:
    """The Data Manager's "Retrieve predictions" on all tasks: Label Studio asks the connected backend."""
    r = requests.post(f"{ls_url}/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project_id},
                      json={"selectedItems": {"all": True, "excluded": []}},
                      headers={"Authorization": f"Token {token}"}, timeout=300)
    assert r.ok, r.text


def upload(label_studio, project_id: int, files: dict[str, bytes | Path]) -> None:
    """Upload files (name -> bytes or a path) into a project, one task each, as the import page does."""
    parts = {}
    for i, (name, data) in enumerate(files.items()):
        body = Path(data).read_bytes() if isinstance(data, Path) else data
        parts[f"file{i}"] = (name, body, mimetypes.guess_type(name)[0] or "application/octet-stream")
    r = requests.post(f"{label_studio.url}/api/projects/{project_id}/import", files=parts,
                      headers={"Authorization": f"Token {label_studio.token}"}, timeout=120)
    assert r.status_code == 201, r.text


def published_version(backend_url: str, project_id: int, logs, timeout: float = 300) -> str:
    """Wait until no training job of the project is queued or running; assert the newest one published a version
    and return the version the backend now serves the project."""
    from ops.services import wait_until

    def jobs() -> list[dict]:
        return requests.get(f"{backend_url}/jobs", params={"project": project_id}, timeout=10).json()["jobs"]

    wait_until("training to finish", lambda: jobs() and all(j["status"] not in ("queued", "running") for j in jobs()),
               timeout, logs)
    job = jobs()[0]
    assert job["status"] == "succeeded" and job["result"]["status"] == "published", (job, logs()[-3000:])
    return requests.get(f"{backend_url}/health", params={"project": project_id}, timeout=10).json()["model_version"]
