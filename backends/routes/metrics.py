"""/metrics (Prometheus) and the per-request counters and timings behind it."""
from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from .. import metrics
from .context import services

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def prometheus():
    body, content_type = metrics.render(services().state)
    return Response(body, content_type=content_type)


def start_clock() -> None:
    g.started = time.perf_counter()


def record(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    name = services().backend.name
    metrics.REQUESTS.labels(name, endpoint, str(response.status_code)).inc()
    metrics.LATENCY.labels(name, endpoint).observe(time.perf_counter() - g.get("started", time.perf_counter()))
    return response


def install(app: Flask) -> None:
    """Count and time every request, refused ones included (so install this before the auth check)."""
    app.before_request(start_clock)
    app.after_request(record)
