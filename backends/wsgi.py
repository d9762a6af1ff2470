"""WSGI entry point for gunicorn: the backend named by the `BACKEND` environment variable.

    BACKEND=text_cls gunicorn -c backends/gunicorn_conf.py backends.wsgi:app
"""
from __future__ import annotations

import os

from .app import create_app

app = create_app(os.environ.get("BACKEND", "text_cls"), warm=True)
