"""Basic auth on every endpoint but /health, when BASIC_AUTH_USER is set; failed attempts are rate-limited."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request

from ..auth import CHALLENGE, FailedAttempts, check_basic_auth
from .context import services

log = logging.getLogger(__name__)

OPEN_ENDPOINTS = {"/health"}  # probes from load balancers and compose carry no credentials


def install(app: Flask) -> None:
    """Check credentials before every request (after the metrics clock has started)."""
    attempts = FailedAttempts()

    def guard():
        settings = services().settings
        if not settings.basic_auth_user or request.path in OPEN_ENDPOINTS:
            return None
        # the peer's address, not X-Forwarded-For: a client could name any address there
        client = request.remote_addr or "?"
        wait = attempts.retry_after(client)
        if wait:
            response = jsonify({"error": f"too many failed logins from {client}; try again in {wait} s"})
            response.status_code, response.headers["Retry-After"] = 429, str(wait)
            return response
        header = request.headers.get("Authorization")
        if check_basic_auth(header, settings.basic_auth_user, settings.basic_auth_pass):
            return None
        if header:  # no credentials is how a client asks for the challenge, not a guess
            attempts.failed(client)
            log.warning("basic auth failed for %s %s from %s", request.method, request.path, client)
        response = jsonify({"error": "basic auth required: wrong or missing credentials", "type": "Unauthorized"})
        response.status_code, response.headers["WWW-Authenticate"] = 401, CHALLENGE
        return response

    app.before_request(guard)
