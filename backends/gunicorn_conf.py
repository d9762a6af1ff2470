"""gunicorn settings for a labelloop backend; every value can be overridden by the environment.

Models are held per worker process, so memory grows with WORKERS; threads share one model. With PRELOAD=1 the
app (and the base model) is loaded once before forking, sharing its memory copy-on-write; leave it off when a
GPU is used (CUDA does not survive fork).
"""
from __future__ import annotations

import os
import tempfile

from backends.config import DEFAULT_PORT  # plain settings, no torch: the master stays light
from backends.threads import bound_spinning

bound_spinning()  # before any worker (or, with PRELOAD=1, the master) loads torch: see backends/threads.py

# BIND wins; else 0.0.0.0:PORT, PORT defaulting to the backend's own port (text_cls 9090, detection 9091, ...)
_default_port = DEFAULT_PORT.get(os.environ.get("BACKEND", "text_cls"), 9090)
bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', _default_port)}")
workers = int(os.environ.get("WORKERS", "1"))
threads = int(os.environ.get("THREADS", "8"))
worker_class = "gthread"
preload_app = os.environ.get("PRELOAD", "0") == "1"
# Predicting a large batch on CPU, or loading a model, can take minutes; Label Studio's own predict timeout is long.
timeout = int(os.environ.get("TIMEOUT", "300"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn >= 25.1 opens a control socket (for `gunicornc`) at one path per user, $XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl: several backends on one host would take it from each other, and each deletes it on exit.
# Off unless CONTROL_SOCKET names a path for this instance (older gunicorns ignore both settings).
control_socket_disable = not os.environ.get("CONTROL_SOCKET")
if os.environ.get("CONTROL_SOCKET"):
    control_socket = os.environ["CONTROL_SOCKET"]

# Metrics from all workers are aggregated through files in this folder; one made here is removed on exit (one set
# by the operator is theirs to empty between runs, as prometheus_client asks).
_OWN_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="labelloop-prom-")


def post_fork(server, worker):
    # every worker gets its share of the cores (CPU_THREADS, default cores / WORKERS): see backends/threads.py
    from backends.threads import apply_threads, thread_budget

    apply_threads(thread_budget(processes=workers))


def on_exit(server):
    if _OWN_METRICS_DIR:
        import shutil

        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
