"""`setup`: create or update a project from its project file, idempotently.

Every setting is compared with what Label Studio holds and only differences are written, so a second run with
the same file changes nothing (and says so).
"""
from __future__ import annotations

from typing import Any

from .backend_client import BackendHTTPClient
from .config import BackendConfig, ProjectConfig
from .connection import LS
from .context import find_project, plain
from .errors import SyncError

MOST_UNCERTAIN = "Most uncertain first"
SCORE = "filter:tasks:predictions_score"


def _number(filter_name: str, operator: str, value: Any) -> dict:
    return {"filter": filter_name, "operator": operator, "type": "Number", "value": value}


def desired_views(cfg: ProjectConfig) -> list[dict]:
    """Data Manager tabs: lowest prediction score first, and difficulty tiers by score, over unfinished tasks.

    The Data Manager reads only predictions of the project's model version for the score, which is why
    predict and rank set that version.
    """
    # a task is still open until it has as many annotations as the overlap asks for
    unfinished = _number("filter:tasks:total_annotations", "less", cfg.maximum_annotations)
    ordering = ["tasks:predictions_score"]
    views: list[dict] = []
    if cfg.most_uncertain_view:
        views.append({"title": MOST_UNCERTAIN, "ordering": ordering,
                      "filters": {"conjunction": "and", "items": [unfinished]}})
    if cfg.tiers is not None:
        hard, easy = cfg.tiers.hard_below, cfg.tiers.easy_from
        for title, items in (
            (f"Hard (score < {hard:g})", [_number(SCORE, "less", hard)]),
            (f"Medium ({hard:g} <= score < {easy:g})",
             [_number(SCORE, "greater_or_equal", hard), _number(SCORE, "less", easy)]),
            (f"Easy (score >= {easy:g})", [_number(SCORE, "greater_or_equal", easy)]),
        ):
            views.append({"title": title, "ordering": ordering,
                          "filters": {"conjunction": "and", "items": [*items, unfinished]}})
    return views


def _project_fields(cfg: ProjectConfig) -> dict[str, Any]:
    return {"title": cfg.title, "description": cfg.description, "expert_instruction": cfg.instructions,
            "show_instruction": bool(cfg.instructions), "label_config": cfg.label_config,
            "maximum_annotations": cfg.maximum_annotations,
            "overlap_cohort_percentage": cfg.overlap_cohort_percentage,
            "show_collab_predictions": cfg.show_predictions, **cfg.settings}


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(current, str):
        return current.strip() == wanted.strip()
    if isinstance(wanted, str) and current is None:
        return wanted == ""
    return current == wanted


def _ml_fields(b: BackendConfig) -> dict[str, Any]:
    fields: dict[str, Any] = {"title": b.title, "is_interactive": b.interactive,
                              "auth_method": "BASIC_AUTH" if b.user else "NONE"}
    if b.user:
        fields["basic_auth_user"] = b.user
    if b.extra_params is not None:
        fields["extra_params"] = b.extra_params
    if b.timeout is not None:
        fields["timeout"] = b.timeout
    return fields


def _connect_backend(ls: LS, project_id: int, b: BackendConfig, update_auth: bool, changes: list[str]) -> Any:
    with ls.errors(f"listing the ML backends of project {project_id}"):
        existing = [m for m in ls.sdk.ml.list(project=project_id) if (m.url or "").rstrip("/") == b.url]
    wanted = _ml_fields(b)
    if not existing:
        # Label Studio calls the backend's /health and /setup here (3 s timeout by default: ML_TIMEOUT_SETUP)
        with ls.errors(f"connecting the ML backend {b.url}"):
            # no basic_auth_pass at all for a backend without auth: Label Studio 1.23 answers a null one with a 500
            secret = {"basic_auth_pass": b.password} if b.user else {}
            ml = ls.sdk.ml.create(project=project_id, url=b.url, **secret, **wanted)
        changes.append(f"connected ML backend {ml.id} {b.title!r} at {b.url}")
        return ml
    ml = existing[0]
    current = plain(ml)
    diff = {k: v for k, v in wanted.items() if not _same(current.get(k), v)}
    if b.user and update_auth:
        diff["basic_auth_pass"] = b.password  # Label Studio never shows the password back: only pushed on request
    if diff:
        with ls.errors(f"updating the ML backend {b.url}"):
            ml = ls.sdk.ml.update(ml.id, **diff)
        changes.append(f"updated ML backend {ml.id}: {', '.join(sorted(diff))}")
    return ml


def _webhook(ls: LS, project_id: int, b: BackendConfig, changes: list[str]) -> None:
    """Label Studio creates the backend's webhook without headers: add the basic-auth header to it."""
    url = b.url + "/webhook"
    with ls.errors(f"listing the webhooks of project {project_id}"):
        hooks = [h for h in ls.sdk.webhooks.list(project=project_id) if (h.url or "").rstrip("/") == url]
    auth = b.auth_header()
    if not hooks:
        headers = {"Authorization": auth} if auth else {}
        with ls.errors(f"creating the webhook {url}"):
            hook = ls.sdk.webhooks.create(url=url, project=project_id, headers=headers, send_payload=True,
                                          send_for_all_actions=True, is_active=True)
        changes.append(f"created webhook {hook.id} to {url}")
        return
    for hook in hooks:
        headers = dict(hook.headers or {})
        if auth and headers.get("Authorization") != auth:
            headers["Authorization"] = auth
            with ls.errors(f"updating the webhook {url}"):
                ls.sdk.webhooks.update(hook.id, headers=headers)
            changes.append(f"added basic auth to webhook {hook.id}")


def _views(ls: LS, project_id: int, cfg: ProjectConfig, changes: list[str]) -> None:
    with ls.errors(f"listing the views of project {project_id}"):
        existing = {(v.data or {}).get("title"): v for v in ls.sdk.views.list(project=project_id)}
    for wanted in desired_views(cfg):
        view = existing.get(wanted["title"])
        if view is None:
            with ls.errors(f"creating the view {wanted['title']!r}"):
                ls.sdk.views.create(project=project_id, data=wanted)
            changes.append(f"created view {wanted['title']!r}")
            continue
        data = dict(view.data or {})
        if any(data.get(k) != v for k, v in wanted.items()):
            with ls.errors(f"updating the view {wanted['title']!r}"):
                ls.sdk.views.update(str(view.id), project=project_id, data={**data, **wanted})
            changes.append(f"updated view {wanted['title']!r}")


def model_versions(ls: LS, project_id: int) -> dict[str, int]:
    """Versions that have predictions in the project, with their counts."""
    r = ls.raw("GET", f"/api/projects/{project_id}/model-versions", "listing model versions", timeout=60)
    body = r.json()
    return body if isinstance(body, dict) else {}


def set_model_version(ls: LS, project_id: int, version: str) -> bool:
    """Point the project at `version` so "Prediction score" sorts by it; False when it already was."""
    with ls.errors(f"reading project {project_id}"):
        current = ls.sdk.projects.get(id=project_id).model_version
    if current == version:
        return False
    with ls.errors(f"setting the model version of project {project_id} to {version!r}"):
        ls.sdk.projects.update(id=project_id, model_version=version)
    return True


def _model_version(ls: LS, project_id: int, cfg: ProjectConfig, mls: list[Any], changes: list[str],
                   notes: list[str]) -> None:
    if cfg.model_version == "none":
        return
    wanted = cfg.model_version
    if wanted == "auto":
        if not cfg.backends:
            return
        b = cfg.backends[0]
        try:
            wanted = BackendHTTPClient(b.url, b.auth, timeout=15).served_version(project_id)
        except SyncError:
            wanted = getattr(mls[0], "model_version", None) or ""
        if not wanted:
            return
    # Label Studio accepts only a version with predictions in the project (or a backend's title)
    available = model_versions(ls, project_id)
    titles = {b.title for b in cfg.backends}
    if wanted not in available and wanted not in titles:
        notes.append(f"model version not set yet: no predictions of {wanted!r} in the project (predict sets it)")
        return
    if set_model_version(ls, project_id, wanted):
        changes.append(f"set model version {wanted!r}")


def setup(ls: LS, cfg: ProjectConfig, update_auth: bool = False) -> tuple[int, list[str], list[str]]:
    """Create or update the project of `cfg`.

    Returns:
        (project id, the changes made, notes for the user).
    """
    changes: list[str] = []
    notes: list[str] = []
    fields = _project_fields(cfg)
    project = find_project(ls, cfg.title)
    if project is None:
        with ls.errors(f"creating project {cfg.title!r}"):
            project = ls.sdk.projects.create(**fields)
        changes.append(f"created project {project.id} {cfg.title!r}")
    else:
        with ls.errors(f"reading project {project.id}"):
            current = plain(ls.sdk.projects.get(id=project.id))
        if not _same(current.get("label_config"), cfg.label_config):
            # also checks the new config against the annotations the project already holds
            with ls.errors("validating the label config"):
                ls.sdk.projects.validate_label_config(project.id, label_config=cfg.label_config)
        diff = {k: v for k, v in fields.items() if not _same(current.get(k), v)}
        if diff:
            with ls.errors(f"updating project {project.id}"):
                ls.sdk.projects.update(id=project.id, **diff)
            changes.append(f"updated project {project.id}: {', '.join(sorted(diff))}")
    mls = []
    for b in cfg.backends:
        mls.append(_connect_backend(ls, project.id, b, update_auth, changes))
        _webhook(ls, project.id, b, changes)
    _views(ls, project.id, cfg, changes)
    _model_version(ls, project.id, cfg, mls, changes, notes)
    return project.id, changes, notes
