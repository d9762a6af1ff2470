"""Every error answered as JSON that says what went wrong; a traceback only ever goes to the log."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from selection import UnknownStrategy

from ..exceptions import LabelloopError
from .context import services

log = logging.getLogger(__name__)


def known_error(e: LabelloopError):
    if e.status >= 500:
        log.error("%s: %s", type(e).__name__, e)
    return jsonify({"error": str(e), "type": type(e).__name__}), e.status


def unknown_strategy(e: UnknownStrategy):
    # the env default is checked at start-up, so an unknown name came with the request or the project's extra params
    return jsonify({"error": f"'uncertainty': {e}", "type": "BadRequest"}), 400


def not_found(e):
    return jsonify({"error": f"no such endpoint: {request.path}"}), 404


def bad_method(e):
    return jsonify({"error": f"{request.method} is not allowed on {request.path}"}), 405


def too_large(e):
    limit = services().settings.max_request_bytes
    return jsonify({"error": f"the request body is larger than {limit} bytes (MAX_REQUEST_BYTES); "
                             "send fewer tasks per request"}), 413


def other_http(e: HTTPException):
    return jsonify({"error": e.description or e.name}), e.code or 500


def redis_down(e: Exception):
    # Training jobs, their records and the annotation counts live in Redis; predictions do not need it.
    log.error("Redis is unreachable on %s: %s", request.path, e)
    return jsonify({"error": f"Redis is unreachable ({e}); training and job records are unavailable until it is "
                             "back (predictions continue)"}), 503


def unexpected(e: Exception):
    log.exception("unexpected error on %s", request.path)
    return jsonify({"error": f"internal error ({type(e).__name__}); see the backend's log"}), 500


def install(app: Flask) -> None:
    app.register_error_handler(LabelloopError, known_error)
    app.register_error_handler(UnknownStrategy, unknown_strategy)
    app.register_error_handler(404, not_found)
    app.register_error_handler(405, bad_method)
    app.register_error_handler(413, too_large)
    app.register_error_handler(HTTPException, other_http)
    app.register_error_handler(RedisConnectionError, redis_down)
    app.register_error_handler(RedisTimeoutError, redis_down)
    app.register_error_handler(Exception, unexpected)
