"""One training run for (backend, project): read annotations from Label Studio, fit, publish or reject.

`train_project` is what the training queue runs, in-process or in an RQ worker; it reads its settings from the
environment of the process it runs in.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

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


def train_project(backend: str, project_id: int, force: bool = False, settings: Settings | None = None) -> dict:
    """Train a new version of `backend` for `project_id` from the project's current annotations.

    Args:
        force: train even when the annotations are the same as those of the served version.

    Returns:
        {"status": "published"|"rejected"|"skipped", ...}. Raises on failure; the served version is untouched.
    """
    settings = settings or Settings.from_env()
    adapter = create(backend, settings)
    store = ModelStore(settings.model_dir, backend, settings.keep_versions)
    saved = store.load_project_settings(project_id)
    ls = client_for(settings, settings.label_studio_url or saved.get("hostname"),
                    settings.api_key or saved.get("access_token"))
    label_config = ls.get_label_config(project_id)
    adapter.check_config(label_config)
    examples = ls.labeled_tasks(project_id)
    fingerprint = annotations_fingerprint(examples)
    current = store.current(project_id)
    if current is not None and not force and _meta(current.path).get("fingerprint") == fingerprint:
        return {"status": "skipped", "reason": "no new annotations since " + current.model_version}
    parent = adapter.load_model(current.path if current else None)
    media = MediaFetcher(settings, ls_url=ls.url, auth=ls.auth_headers)
    staging = store.stage(project_id)
    try:
        result = adapter.fit(examples, label_config, parent, staging, params=saved.get("extra_params") or {},
                             media=media)
    except NotEnoughData as e:
        store.discard(project_id, staging)
        return {"status": "skipped", "reason": str(e), "n_examples": len(examples)}
    except BaseException:
        store.discard(project_id, staging)
        raise
    meta = {"parent": current.name if current else None, "n_examples": result.n_examples, "metrics": result.metrics,
            "fingerprint": fingerprint, "annotations": len(examples)}
    if result.publish:
        info = store.publish(project_id, staging, meta)
        status = "published"
    else:
        info = store.reject(project_id, staging, meta, result.reason)
        status = "rejected"
    log.info("%s project %s: %s %s (%d examples) %s", backend, project_id, status, info.model_version,
             result.n_examples, result.metrics)
    return {"status": status, "model_version": info.model_version, "version": info.name,
            "n_examples": result.n_examples, "metrics": result.metrics, "reason": result.reason}
