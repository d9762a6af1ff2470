"""One training run for (backend, project): read annotations from Label Studio, fit, publish or reject.

`train_project` is what the training queue runs. In the serving process it gets the app's adapter and settings
(`trainer`), so no second copy of the model is loaded; in an RQ worker it is called by its dotted path and builds
its adapter from the environment of that process.
"""
from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path
from typing import Callable

from .base import Adapter
from .config import Settings
from .exceptions import NotEnoughData
from .ls_client import client_for
from .media import MediaFetcher
from .registry import create
from .versions import ModelStore

log = logging.getLogger(__name__)


def annotations_fingerprint(examples) -> str:
    """A digest of which annotations (and which edits of them) a model was trained on."""
    keys = sorted((e.task_id, e.annotation_id or 0, e.updated_at or "") for e in examples)
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]


def _meta(version_dir: Path) -> dict:
    try:
        return json.loads((version_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def trainer(adapter: Adapter, settings: Settings) -> Callable[[str, int, bool], dict]:
    """The job function for training in this process with the serving adapter and the app's settings.

    Args:
        adapter: the adapter the app serves with (its loaded base models are reused).
        settings: the settings the app was created with.

    Returns:
        `f(backend, project_id, force) -> dict`, for `TrainingQueue(job_func=...)`.
    """
    return partial(train_project, settings=settings, adapter=adapter)


def train_project(backend: str, project_id: int, force: bool = False, settings: Settings | None = None,
                  adapter: Adapter | None = None) -> dict:
    """Train a new version of `backend` for `project_id` from the project's current annotations.

    Args:
        force: train even when the annotations are the same as those of the served version.
        settings: default: read from the environment.
        adapter: the backend's adapter; default: a new one built from `settings`.

    Returns:
        {"status": "published"|"rejected"|"skipped", ...}. Raises on failure; the served version is untouched
        and nothing of the run is left in MODEL_DIR.
    """
    settings = settings or Settings.from_env()
    if adapter is None:
        adapter = create(backend, settings)
    elif adapter.name != backend:
        raise ValueError(f"a {adapter.name} adapter cannot train {backend}")
    store = ModelStore(settings.model_dir, backend, settings.keep_versions)
    saved = store.load_project_settings(project_id)
    key = settings.api_key or saved.get("access_token") or ""
    ls = client_for(settings, settings.label_studio_url or saved.get("hostname"), key)
    label_config = ls.get_label_config(project_id)
    adapter.check_config(label_config)
    params = saved.get("extra_params") or {}
    wanted = adapter.open_tasks_wanted(params)
    examples, open_tasks = ls.training_tasks(project_id, wanted)
    fingerprint = annotations_fingerprint(examples)
    current = store.current(project_id)
    if current is not None and not force and _meta(current.path).get("fingerprint") == fingerprint:
        return {"status": "skipped", "reason": "no new annotations since " + current.model_version}
    parent = adapter.load_model(current.path if current else None)
    media = MediaFetcher(settings, ls_url=ls.url, auth=ls.auth_headers, credential=key)
    staging = store.stage(project_id)
    # Everything from here to the publish is inside one cleanup: a fit, a meta.json or a rename that fails (a
    # full or read-only disk) must not leave the staging folder behind. After a publish it is gone anyway.
    try:
        try:
            result = adapter.fit(examples, label_config, parent, staging, params=params, media=media,
                                 **({"open_tasks": open_tasks} if wanted else {}))
        except NotEnoughData as e:
            return {"status": "skipped", "reason": str(e), "n_examples": len(examples)}
        meta = {"parent": current.name if current else None, "n_examples": result.n_examples,
                "metrics": result.metrics, "fingerprint": fingerprint, "annotations": len(examples)}
        if result.publish:
            info = store.publish(project_id, staging, meta)
            status = "published"
        else:
            info = store.reject(project_id, staging, meta, result.reason)
            status = "rejected"
    finally:
        store.discard(project_id, staging)
    log.info("%s project %s: %s %s (%d examples) %s", backend, project_id, status, info.model_version,
             result.n_examples, result.metrics)
    return {"status": status, "model_version": info.model_version, "version": info.name,
            "n_examples": result.n_examples, "metrics": result.metrics, "reason": result.reason}
