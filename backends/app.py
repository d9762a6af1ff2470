"""The Flask app of one backend: Label Studio's ML backend protocol and ours.

Endpoints: /health, /setup, /predict, /webhook (and the older /train, /validate, /versions), /jobs, /metrics; the
routes are in `backends/routes/`, the model cache in `backends/serving.py`.
"""
from __future__ import annotations

from flask import Flask

from . import logs
from .base import Adapter
from .config import Settings
from .registry import create
from .routes import install
from .routes.context import EXTENSION, Services


def create_app(backend: Adapter | str, settings: Settings | None = None, warm: bool = False) -> Flask:
    """The Flask app serving one backend.

    Args:
        backend: an adapter instance, or a backend name from the registry.
        settings: defaults to the environment.
        warm: start loading the base model now, in the background (servers do; tests need not).
    """
    settings = settings or Settings.from_env()
    logs.setup_logging(settings.log_level, [settings.api_key, settings.basic_auth_pass])
    if isinstance(backend, str):
        backend = create(backend, settings)
    s = Services.build(backend, settings)
    logs.add_secrets(_stored_tokens(s))
    if warm:
        s.server.warm_up()
    app = Flask(__name__)
    app.config.update(BACKEND=backend, STORE=s.store, QUEUE=s.queue, MODEL_SERVER=s.server, SETTINGS=settings,
                      MAX_CONTENT_LENGTH=settings.max_request_bytes)
    app.extensions[EXTENSION] = s
    install(app)
    return app


def _stored_tokens(s: Services) -> list[str]:
    """The Label Studio tokens that earlier /setup calls stored, one per project that has one."""
    tokens = []
    for project in s.store.projects():
        try:
            tokens.append(s.project_settings(project).get("access_token") or "")
        except (OSError, ValueError):  # a broken settings file is for /setup to rewrite, not a reason not to start
            continue
    return tokens
