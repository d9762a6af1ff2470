"""Training and versions: /webhook and /train (Label Studio's), /jobs and /versions (ours, for operators)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..exceptions import BadRequest
from ..labels import check_size
from ..params import RETRAIN_EVERY, Number
from .context import services
from .reading import json_body, optional_project, project_id

bp = Blueprint("training", __name__)

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED",
                      "ANNOTATIONS_DELETED"}
JOBS_LIMIT = Number("limit", 0, 1000, integer=True)


def _webhook_project(payload: dict):
    """The project of a webhook: its own "project" key, else the annotation's or the task's."""
    project = payload.get("project")
    if project is None:
        for key in ("annotation", "task"):
            if isinstance(payload.get(key), dict) and payload[key].get("project") is not None:
                project = payload[key]["project"]
    return project


@bp.post("/webhook")
def webhook():
    s = services()
    payload = json_body()
    action = payload.get("action")
    if not isinstance(action, str):
        raise BadRequest(f"'action' must be a string such as ANNOTATION_CREATED, not {type(action).__name__}")
    if action not in ANNOTATION_ACTIONS and action != "START_TRAINING":
        return jsonify({"status": "ignored", "action": action}), 200
    project = _webhook_project(payload)
    pid = project_id(project)
    saved = s.project_settings(pid)
    config = project.get("label_config") if isinstance(project, dict) else None
    if config:
        if not isinstance(config, str):
            raise BadRequest("'project.label_config' must be a string (a label config's XML)")
        check_size(config, s.settings.max_labels)  # training would read it
        if saved.get("label_config") != config:
            s.store.save_project_settings(pid, {**saved, "label_config": config})
    if action == "START_TRAINING":
        answer = s.queue.submit(pid, reason="START_TRAINING", force=True)
    else:
        try:
            every = RETRAIN_EVERY.read(saved.get("extra_params"))
        except BadRequest as e:
            raise BadRequest(f"the project's extra params (set them again in Label Studio): {e}") from None
        answer = s.queue.annotation_event(pid, action, every)
    return jsonify({**answer, "action": action, "project": pid}), 201


@bp.post("/train")
def train():
    # Label Studio without the START_TRAINING webhook flag posts here; training reads annotations itself.
    pid = project_id(json_body().get("project"))
    answer = services().queue.submit(pid, reason="train endpoint", force=True)
    return jsonify({**answer, "job": answer.get("job_id")}), 201


@bp.get("/jobs")
def jobs():
    pid = optional_project(request.args.get("project"))
    try:
        limit = JOBS_LIMIT.read(request.args, default=20)
    except BadRequest as e:
        raise BadRequest(f"query parameter {e}") from None
    return jsonify({"jobs": services().queue.jobs(pid, limit=limit)})


@bp.get("/versions")
def versions():
    store = services().store
    pid = optional_project(request.args.get("project"))
    ids = [pid] if pid is not None else store.projects()
    out = {str(p): [v.to_json() for v in store.list(p)] for p in ids}
    current = {str(p): (c.model_version if (c := store.current(p)) else None) for p in ids}
    return jsonify({"versions": out, "current": current})
