"""WSGI entry point for gunicorn: the backend named by the `BACKEND` environment variable.

    BACKEND=text_cls gunicorn -c backends/gunicorn_conf.py backends.wsgi:app
"""
from __future__ import annotations

import os

from .app import create_app

# gunicorn's PRELOAD=1 (gunicorn_conf.py) makes the app in the master and forks the workers from it. The base model
# is then loaded here, before forking: the workers share it, and none inherits a half-done loader thread (whose
# lock would stay taken in the child for ever).
_PRELOAD = os.environ.get("PRELOAD", "0") == "1"
app = create_app(os.environ.get("BACKEND", "text_cls"), warm=not _PRELOAD)
if _PRELOAD:
    app.config["MODEL_SERVER"].warm_up(background=False)
