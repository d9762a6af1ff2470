"""Label Studio's ML backend protocol: /health, /setup, /validate, /predict, and /embed (ours, for ranking)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, jsonify, request

from .. import logs, metrics
from ..base import TaskEmbedding, TaskPrediction
from ..exceptions import BadRequest, LabelloopError
from ..labels import check_size
from ..media import MediaFetcher
from ..params import validate
from ..threads import thread_report
from .context import Services, services
from .reading import extra_params, json_body, merge, optional_project, project_id, split_unreadable, text_field

log = logging.getLogger(__name__)
bp = Blueprint("protocol", __name__)


@bp.get("/health")
@bp.get("/")
def health():
    s = services()
    state, reason = s.server.base_state()
    if state == "failed":
        # 503 makes Label Studio refuse the connection and compose mark the container unhealthy
        return jsonify({"status": "UNAVAILABLE", "backend": s.backend.name, "model": state, "reason": reason}), 503
    body: dict[str, Any] = {"status": "UP", "backend": s.backend.name, "model": state,
                            "model_version": s.backend.base_version(), "threads": thread_report(),
                            "measures": s.backend.measures(),
                            **s.backend.status()}
    project = request.args.get("project")
    if project:
        pid = project_id(project)
        body["project"] = pid
        body["model_version"] = s.served_version(pid)
        body["measures"] = project_measures(s, pid)
        failure = s.queue.last_failure(pid)
        if failure:
            body["last_training_failure"] = {k: failure.get(k) for k in ("id", "finished", "error")}
    return jsonify(body)


def project_measures(s: Services, pid: int) -> list[str]:
    """The measures a project's scores can follow, by the label config its /setup saved."""
    config = s.project_settings(pid).get("label_config")
    try:
        return s.backend.measures(config)
    except LabelloopError:  # a config this backend no longer serves: /predict will say why
        return s.backend.measures()


def check_config(s: Services, label_config: str) -> None:
    """400 unless the backend can serve `label_config` and its labels are within `max_labels`."""
    check_size(label_config, s.settings.max_labels)
    s.backend.check_config(label_config)


@bp.post("/setup")
def setup():
    s = services()
    payload = json_body()
    pid = project_id(payload.get("project"))
    schema = text_field(payload, "schema", "label_config")
    check_config(s, schema)
    extra = extra_params(payload.get("extra_params"))
    validate(extra, s.params, where="extra_params")
    saved = s.project_settings(pid)
    update: dict[str, Any] = {"label_config": schema, "extra_params": extra}
    for key in ("hostname", "access_token"):
        if payload.get(key):
            if not isinstance(payload[key], str):
                raise BadRequest(f"{key!r} must be a string")
            update[key] = payload[key]
    if update.get("access_token"):
        logs.add_secrets([update["access_token"]])
    if any(saved.get(k) != v for k, v in update.items()):
        s.store.save_project_settings(pid, {**saved, **update})
    return jsonify({"model_version": s.served_version(pid)})


@bp.post("/validate")
def validate_config():
    check_config(services(), text_field(json_body(), "config"))
    return jsonify({"status": "ok"})


@dataclass
class TaskRequest:
    """What /predict and /embed share: tasks, the config, params, the served model and the project's media."""

    tasks: list
    label_config: str
    request_params: dict
    params: dict  # the project's extra params overlaid with the request's
    model_version: str
    model: Any
    media: MediaFetcher

    @classmethod
    def read(cls, s: Services) -> TaskRequest:
        payload = json_body()
        tasks = payload.get("tasks")
        if not isinstance(tasks, list):
            raise BadRequest("'tasks' must be a list of tasks")
        pid = optional_project(payload.get("project"))
        saved = s.project_settings(pid)
        label_config = text_field(payload, "label_config") or saved.get("label_config") or ""
        check_config(s, label_config)
        request_params = payload.get("params") or {}
        if not isinstance(request_params, dict):
            raise BadRequest("'params' must be an object")
        if not isinstance(request_params.get("context") or {}, dict):
            raise BadRequest("'params.context' must be an object")
        # the project's stored extra params are checked again: ones stored before /setup checked them must give a
        # 400 that says which, not a 500 in the adapter
        params = {**(saved.get("extra_params") or {}), **request_params}
        validate(params, s.adapter_params, where="params (the request's over the project's extra params)")
        model_version, model = s.server.get(pid)
        return cls(tasks, label_config, request_params, params, model_version, model, s.media_for(saved))


@bp.post("/predict")
def predict():
    s = services()
    r = TaskRequest.read(s)
    name = s.backend.name
    metrics.PREDICT_BATCH.labels(name).observe(len(r.tasks))
    if not r.tasks:
        return jsonify({"results": [], "model_version": r.model_version})
    readable, unreadable = split_unreadable(r.tasks)
    answered = s.backend.predict(r.model, readable, r.label_config, context=r.request_params.get("context"),
                                 params=r.params, media=r.media) if readable else []
    if len(answered) != len(readable):  # a broken adapter must not shift predictions onto other tasks
        raise LabelloopError(f"{name} answered {len(answered)} predictions for {len(readable)} tasks")
    predictions = merge(answered, unreadable, lambda error: TaskPrediction(error=error))
    failed = sum(p.error is not None for p in predictions)
    metrics.PREDICTIONS.labels(name, "ok").inc(len(predictions) - failed)
    metrics.PREDICTIONS.labels(name, "error").inc(failed)
    for task, p in zip(r.tasks, predictions):
        if p.error is not None:
            log.warning("task %s not predicted: %s", task.get("id") if isinstance(task, dict) else "?", p.error)
    return jsonify({"results": [p.to_json(r.model_version) for p in predictions], "model_version": r.model_version})


@bp.post("/embed")
def embed():
    # Not part of Label Studio's protocol: ranking scripts use it to spread a labeling batch over the data.
    s = services()
    r = TaskRequest.read(s)
    readable, unreadable = split_unreadable(r.tasks)
    answered = s.backend.embed(r.model, readable, r.label_config, params=r.params, media=r.media) if readable else []
    if len(answered) != len(readable):
        raise LabelloopError(f"{s.backend.name} answered {len(answered)} embeddings for {len(readable)} tasks")
    vectors = merge(answered, unreadable, lambda error: TaskEmbedding(error=error))
    return jsonify({"model_version": r.model_version,
                    "embeddings": [v.vector if v.error is None else None for v in vectors],
                    "errors": [v.error for v in vectors]})
