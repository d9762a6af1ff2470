"""Command line: serve a backend, run training workers, train now, and manage model versions.

    python -m backends serve text_cls [--host H] [--port P]
    python -m backends worker                      # RQ worker for training jobs (needs REDIS_URL; waits for Redis)
    python -m backends train text_cls PROJECT_ID   # one training run now, in this process
    python -m backends versions list text_cls PROJECT_ID
    python -m backends versions rollback text_cls PROJECT_ID [--to v3]
"""
from __future__ import annotations

import argparse
import json
import sys

from .config import DEFAULT_PORT, Settings
from .exceptions import LabelloopError
from .registry import ADAPTERS
from .threads import apply_threads


def _serve(args, settings: Settings) -> None:
    from .app import create_app

    app = create_app(args.backend, settings, warm=True)
    app.run(host=args.host, port=args.port or DEFAULT_PORT[args.backend], threaded=True, use_reloader=False)


def _worker(args, settings: Settings) -> None:
    from .jobs.worker import run_worker
    from .logs import setup_logging

    if not settings.redis_url:
        raise LabelloopError("REDIS_URL is not set: without it training runs inside the backend process")
    setup_logging(settings.log_level, [settings.api_key, settings.basic_auth_pass])
    run_worker(settings.redis_url, burst=args.burst)


def _train(args, settings: Settings) -> None:
    from .logs import setup_logging
    from .training import train_project

    setup_logging(settings.log_level, [settings.api_key, settings.basic_auth_pass])
    print(json.dumps(train_project(args.backend, args.project, force=True, settings=settings), indent=2))


def _versions(args, settings: Settings) -> None:
    from .versions import ModelStore

    store = ModelStore(settings.model_dir, args.backend, settings.keep_versions)
    if args.action == "list":
        current = store.current(args.project)
        for v in store.list(args.project):
            mark = "*" if current and v.name == current.name else " "
            print(f"{mark} {v.name:6} {v.status:9} {v.created} examples={v.n_examples} {json.dumps(v.metrics)}")
    else:
        info = store.rollback(args.project, args.to)
        print(f"now serving {info.model_version}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends", description="labelloop ML backends")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve a backend with Flask's threaded server (development)")
    p.add_argument("backend", choices=list(ADAPTERS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: 9090 text_cls, 9091 detection, ...")
    p.set_defaults(func=_serve)
    p = sub.add_parser("worker", help="run an RQ worker for training jobs",
                       description="Run an RQ worker for training jobs (queue labelloop-train; needs REDIS_URL). "
                                   "It records a killed work-horse's job as failed at once, and when Redis goes "
                                   "away it waits for it and carries on.")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=_worker)
    p = sub.add_parser("train", help="train a project now, in this process")
    p.add_argument("backend", choices=list(ADAPTERS))
    p.add_argument("project", type=int)
    p.set_defaults(func=_train)
    p = sub.add_parser("versions", help="list or roll back a project's model versions")
    p.add_argument("action", choices=["list", "rollback"])
    p.add_argument("backend", choices=list(ADAPTERS))
    p.add_argument("project", type=int)
    p.add_argument("--to", default=None, help="version to serve (default: the one before the current)")
    p.set_defaults(func=_versions)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command != "versions":
            apply_threads(settings.cpu_threads)
        args.func(args, settings)
    except LabelloopError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
