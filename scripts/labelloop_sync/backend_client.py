"""Plain HTTP to a labelloop backend: /predict, /embed, /health, /jobs and the training webhook.

The CLI's client of a running backend server (not the `backends.base.Adapter` contract the server implements)."""
from __future__ import annotations

from typing import Any

import requests

from .errors import SyncError


class BackendHTTPClient:
    """One backend server at `url`, called over HTTP with optional basic auth."""

    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 300):
        self.url = url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False

    def __repr__(self) -> str:
        return f"BackendHTTPClient({self.url!r})"

    def _call(self, method: str, path: str, doing: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        try:
            r = self.session.request(method, self.url + path, auth=self.auth, **kwargs)
        except requests.Timeout:
            raise SyncError(f"backend {self.url} timed out while {doing}") from None
        except requests.RequestException as e:
            raise SyncError(f"cannot reach backend {self.url} while {doing}: {type(e).__name__}") from None
        if r.status_code == 401:
            raise SyncError(f"backend {self.url} refused the credentials (401) while {doing}: set auth for it in "
                            "the project file or pass --backend-user/--backend-password")
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400:
            reason = body.get("error") if isinstance(body, dict) else r.text[:200]
            raise SyncError(f"backend {self.url} answered {r.status_code} while {doing}: {reason}")
        if body is None:
            raise SyncError(f"backend {self.url} gave a non-JSON answer while {doing}")
        return body

    def health(self, project: int | None = None) -> dict:
        params = {"project": project} if project is not None else None
        return self._call("GET", "/health", "checking health", params=params, timeout=15)

    def served_version(self, project: int) -> str:
        return str(self.health(project)["model_version"])

    def predict(self, project: int, label_config: str, tasks: list[dict], params: dict | None = None) -> dict:
        """The backend's answer for `tasks` ({"id", "data"} each): {"results": [...], "model_version"}."""
        body = self._call("POST", "/predict", f"predicting {len(tasks)} tasks",
                          json={"tasks": tasks, "project": str(project), "label_config": label_config,
                                "params": params or {}})
        if len(body.get("results") or []) != len(tasks):
            raise SyncError(f"backend {self.url} answered {len(body.get('results') or [])} predictions for "
                            f"{len(tasks)} tasks")
        return body

    def embed(self, project: int, label_config: str, tasks: list[dict]) -> dict:
        return self._call("POST", "/embed", f"embedding {len(tasks)} tasks",
                          json={"tasks": tasks, "project": str(project), "label_config": label_config})

    def jobs(self, project: int) -> list[dict]:
        return self._call("GET", "/jobs", "listing training jobs", params={"project": project}, timeout=15)["jobs"]

    def start_training(self, project: int, label_config: str) -> dict:
        """What Label Studio's "Start training" sends: the START_TRAINING webhook."""
        return self._call("POST", "/webhook", "starting training", timeout=30,
                          json={"action": "START_TRAINING", "project": {"id": project, "label_config": label_config}})
