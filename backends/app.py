"""The HTTP protocol Label Studio speaks to an ML backend, on Flask.

Endpoints: /health, /setup, /predict, /webhook (and the older /train, /validate, /versions), /jobs, /metrics.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from flask import Flask, Response, g, jsonify, request

from . import metrics
from .auth import check_basic_auth
from .base import Backend
from .config import Settings
from .exceptions import BadRequest, LabelloopError, ModelUnavailable, Unauthorized
from .jobs import TrainingQueue
from .lazy import Lazy
from .logs import setup_logging
from .ls_client import client_for, parse_project_id
from .media import MediaFetcher
from .registry import create
from .versions import ModelStore

log = logging.getLogger(__name__)

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED",
                      "ANNOTATIONS_DELETED"}
OPEN_ENDPOINTS = {"/health"}  # probes from load balancers and compose carry no credentials


class ModelServer:
    """Serves each project's newest published version, reloading when it changes, keeping the last good one.

    Every worker process checks the store's CURRENT pointer per request, so a version published by a training
    worker is served without a restart.
    """

    def __init__(self, backend: Backend, store: ModelStore, max_models: int = 8):
        self.backend, self.store, self.max_models = backend, store, max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[int, tuple[str, Any]] = OrderedDict()
        self._base = Lazy(lambda: backend.load_model(None), f"the base model of {backend.name} cannot be loaded")
        self._warming = False
        self._broken: set[str] = set()

    def base(self) -> tuple[str, Any]:
        """The base model, loaded once.

        Raises:
            ModelUnavailable: when it cannot be loaded (the reason is kept for /health).
        """
        return self.backend.base_version(), self._base.get()

    def warm_up(self, background: bool = True) -> None:
        """Load the base model now, so the first request is not the slow one.

        Args:
            background: load in a thread and return at once; False loads before returning (a failure is kept for
                /health, not raised).
        """
        self._warming = True

        def load():
            try:
                self.base()
            except ModelUnavailable:
                pass

        if background:
            threading.Thread(target=load, name="warm-up", daemon=True).start()
        else:
            load()

    def base_state(self) -> tuple[str, str | None]:
        """("ready" | "loading" | "failed" | "idle", reason) of the base model, for /health."""
        if self._base.loaded:
            return "ready", None
        if self._base.error:
            return "failed", self._base.error
        return ("loading" if self._warming else "idle"), None

    def get(self, project_id: int | None) -> tuple[str, Any]:
        """(model_version, model) to serve for a project."""
        info = self.store.current(project_id) if project_id is not None else None
        cached = self._models.get(project_id) if project_id is not None else None
        if info is None:
            return self.base()
        if cached and cached[0] == info.model_version:
            return cached
        if info.model_version in self._broken:
            return cached or self.base()
        with self._lock:
            cached = self._models.get(project_id)
            if cached and cached[0] == info.model_version:
                return cached
            try:
                model = self.backend.load_model(info.path)
            except Exception:
                log.exception("cannot load %s for project %s; serving the last good model", info.model_version,
                              project_id)
                self._broken.add(info.model_version)
                return cached or self.base()
            self._models[project_id] = (info.model_version, model)
            self._models.move_to_end(project_id)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return self._models[project_id]


def _json_body() -> dict:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    return payload


def _extra_params(raw: Any) -> dict:
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadRequest("extra_params must be a JSON object") from None
    if not isinstance(raw, dict):
        raise BadRequest("extra_params must be a JSON object")
    return raw


def create_app(backend: Backend | str, settings: Settings | None = None, warm: bool = False) -> Flask:
    """The Flask app serving one backend.

    Args:
        backend: an adapter instance, or a backend name from the registry.
        settings: defaults to the environment.
        warm: start loading the base model now, in the background (servers do; tests need not).
    """
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level, [settings.api_key, settings.basic_auth_pass])
    if isinstance(backend, str):
        backend = create(backend, settings)
    store = ModelStore(settings.model_dir, backend.name, settings.keep_versions)
    queue = TrainingQueue(backend.name, settings)
    server = ModelServer(backend, store)
    if warm:
        server.warm_up()
    state = metrics.StateCollector(
        backend.name, queue.outcome_counts,
        lambda: [(p, v.model_version) for p in store.projects() if (v := store.current(p)) is not None],
        queue.result_counts)
    media_cache: dict[tuple[str, str], MediaFetcher] = {}

    app = Flask(__name__)
    app.config.update(BACKEND=backend, STORE=store, QUEUE=queue, MODEL_SERVER=server, SETTINGS=settings)

    def project_settings(project_id: int | None) -> dict:
        return store.load_project_settings(project_id) if project_id is not None else {}

    def media_for(saved: dict) -> MediaFetcher:
        """A fetcher for a project's media, with the env's Label Studio (else the one /setup named)."""
        url = settings.label_studio_url or saved.get("hostname", "")
        key = settings.api_key or saved.get("access_token", "")
        if (url, key) not in media_cache:
            auth = client_for(settings, url, key).auth_headers if url and key else None
            media_cache[(url, key)] = MediaFetcher(settings, ls_url=url or None, auth=auth)
        return media_cache[(url, key)]

    @app.before_request
    def _auth_and_clock():
        g.started = time.perf_counter()
        if settings.basic_auth_user and request.path not in OPEN_ENDPOINTS:
            if not check_basic_auth(request.headers.get("Authorization"), settings.basic_auth_user,
                                    settings.basic_auth_pass):
                raise Unauthorized("basic auth required: wrong or missing credentials")

    @app.after_request
    def _record(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUESTS.labels(backend.name, endpoint, str(response.status_code)).inc()
        metrics.LATENCY.labels(backend.name, endpoint).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.errorhandler(LabelloopError)
    def _known_error(e: LabelloopError):
        if e.status >= 500:
            log.error("%s: %s", type(e).__name__, e)
        return jsonify({"error": str(e), "type": type(e).__name__}), e.status

    @app.errorhandler(404)
    def _not_found(e):
        return jsonify({"error": f"no such endpoint: {request.path}"}), 404

    @app.errorhandler(405)
    def _bad_method(e):
        return jsonify({"error": f"{request.method} is not allowed on {request.path}"}), 405

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unexpected error on %s", request.path)
        return jsonify({"error": f"internal error ({type(e).__name__}); see the backend's log"}), 500

    @app.get("/health")
    @app.get("/")
    def health():
        project = request.args.get("project")
        state, reason = server.base_state()
        if state == "failed":
            # 503 makes Label Studio refuse the connection and compose mark the container unhealthy
            return jsonify({"status": "UNAVAILABLE", "backend": backend.name, "model": state, "reason": reason}), 503
        body: dict[str, Any] = {"status": "UP", "backend": backend.name, "model": state,
                                "model_version": backend.base_version(), **backend.status()}
        if project:
            project_id = parse_project_id(project)
            current = store.current(project_id)
            body["project"] = project_id
            body["model_version"] = current.model_version if current else backend.base_version()
            failure = queue.last_failure(project_id)
            if failure:
                body["last_training_failure"] = {k: failure.get(k) for k in ("id", "finished", "error")}
        return jsonify(body)

    @app.post("/setup")
    def setup():
        payload = _json_body()
        project_id = parse_project_id(payload.get("project"))
        schema = payload.get("schema") or payload.get("label_config") or ""
        backend.check_config(schema)
        saved = project_settings(project_id)
        update = {"label_config": schema, "extra_params": _extra_params(payload.get("extra_params"))}
        for key in ("hostname", "access_token"):
            if payload.get(key):
                update[key] = payload[key]
        if any(saved.get(k) != v for k, v in update.items()):
            store.save_project_settings(project_id, {**saved, **update})
        current = store.current(project_id)
        return jsonify({"model_version": current.model_version if current else backend.base_version()})

    @app.post("/validate")
    def validate():
        payload = _json_body()
        backend.check_config(payload.get("config") or "")
        return jsonify({"status": "ok"})

    def task_request() -> tuple[list, dict, str, dict, str, Any, MediaFetcher]:
        """What /predict and /embed share: tasks, project settings, config, params, the served model, media."""
        payload = _json_body()
        tasks = payload.get("tasks")
        if not isinstance(tasks, list):
            raise BadRequest("'tasks' must be a list of tasks")
        project_id = parse_project_id(payload["project"]) if payload.get("project") else None
        saved = project_settings(project_id)
        label_config = payload.get("label_config") or saved.get("label_config") or ""
        backend.check_config(label_config)
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("'params' must be an object")
        model_version, model = server.get(project_id)
        return (tasks, params, label_config, {**saved.get("extra_params", {}), **params}, model_version, model,
                media_for(saved))

    @app.post("/predict")
    def predict():
        tasks, request_params, label_config, params, model_version, model, media = task_request()
        metrics.PREDICT_BATCH.labels(backend.name).observe(len(tasks))
        if not tasks:
            return jsonify({"results": [], "model_version": model_version})
        predictions = backend.predict(model, tasks, label_config, context=request_params.get("context"),
                                      params=params, media=media)
        if len(predictions) != len(tasks):  # a broken adapter must not shift predictions onto other tasks
            raise LabelloopError(f"{backend.name} answered {len(predictions)} predictions for {len(tasks)} tasks")
        failed = sum(p.error is not None for p in predictions)
        metrics.PREDICTIONS.labels(backend.name, "ok").inc(len(predictions) - failed)
        metrics.PREDICTIONS.labels(backend.name, "error").inc(failed)
        for task, p in zip(tasks, predictions):
            if p.error is not None:
                log.warning("task %s not predicted: %s", task.get("id") if isinstance(task, dict) else "?", p.error)
        return jsonify({"results": [p.to_json(model_version) for p in predictions], "model_version": model_version})

    @app.post("/embed")
    def embed():
        # Not part of Label Studio's protocol: ranking scripts use it to spread a labeling batch over the data.
        tasks, _, label_config, params, model_version, model, media = task_request()
        vectors = backend.embed(model, tasks, label_config, params=params, media=media) if tasks else []
        if len(vectors) != len(tasks):
            raise LabelloopError(f"{backend.name} answered {len(vectors)} embeddings for {len(tasks)} tasks")
        return jsonify({"model_version": model_version,
                        "embeddings": [v.vector if v.error is None else None for v in vectors],
                        "errors": [v.error for v in vectors]})

    @app.post("/webhook")
    def webhook():
        payload = _json_body()
        action = payload.get("action")
        if action not in ANNOTATION_ACTIONS and action != "START_TRAINING":
            return jsonify({"status": "ignored", "action": action}), 200
        project = payload.get("project")
        if project is None:
            for key in ("annotation", "task"):
                if isinstance(payload.get(key), dict) and payload[key].get("project") is not None:
                    project = payload[key]["project"]
        project_id = parse_project_id(project)
        saved = project_settings(project_id)
        if isinstance(project, dict) and project.get("label_config"):
            if saved.get("label_config") != project["label_config"]:
                store.save_project_settings(project_id, {**saved, "label_config": project["label_config"]})
        if action == "START_TRAINING":
            answer = queue.submit(project_id, reason="START_TRAINING", force=True)
        else:
            every = (saved.get("extra_params") or {}).get("retrain_every")
            answer = queue.annotation_event(project_id, action, None if every is None else int(every))
        return jsonify({**answer, "action": action, "project": project_id}), 201

    @app.post("/train")
    def train():
        # Label Studio without the START_TRAINING webhook flag posts here; training reads annotations itself.
        payload = _json_body()
        project_id = parse_project_id(payload.get("project"))
        answer = queue.submit(project_id, reason="train endpoint", force=True)
        return jsonify({**answer, "job": answer.get("job_id")}), 201

    @app.get("/jobs")
    def jobs():
        project = request.args.get("project")
        project_id = parse_project_id(project) if project else None
        return jsonify({"jobs": queue.jobs(project_id, limit=int(request.args.get("limit", 20)))})

    @app.get("/versions")
    def versions():
        project = request.args.get("project")
        ids = [parse_project_id(project)] if project else store.projects()
        out = {str(p): [v.to_json() for v in store.list(p)] for p in ids}
        current = {str(p): (c.model_version if (c := store.current(p)) else None) for p in ids}
        return jsonify({"versions": out, "current": current})

    @app.get("/metrics")
    def prometheus():
        body, content_type = metrics.render(state)
        return Response(body, content_type=content_type)

    return app

