"""The HTTP side of a backend, one module per concern.

    context.py   the parts the routes share (`Services`: backend, settings, model store and cache, training queue)
    reading.py   reading a request: its JSON, project ids, label configs, extra params (each bad one a 400)
    protocol.py  Label Studio's protocol: /health, /setup, /validate, /predict, and /embed
    training.py  /webhook, /train, /jobs, /versions
    metrics.py   /metrics and the per-request counters
    access.py    basic auth, with failed attempts rate-limited
    errors.py    every error as JSON with a clear message
"""
from __future__ import annotations

from flask import Flask

from . import access, errors, metrics, protocol, training


def install(app: Flask) -> None:
    """Register the hooks (clock, then auth), the error handlers and the routes on `app`."""
    metrics.install(app)
    access.install(app)
    errors.install(app)
    for blueprint in (protocol.bp, training.bp, metrics.bp):
        app.register_blueprint(blueprint)
