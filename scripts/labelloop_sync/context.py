"""Which project and which backend a command works on: from the project file or from --project/--backend-url."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

from . import config as config_mod
from .backend_client import BackendHTTPClient
from .connection import LS
from .errors import SyncError


@dataclass
class Context:
    ls: LS
    project_id: int
    title: str
    label_config: str
    backend: BackendHTTPClient | None
    config: config_mod.ProjectConfig | None = None

    def need_backend(self) -> BackendHTTPClient:
        if self.backend is None:
            raise SyncError(f"project {self.project_id} has no ML backend: add one under ml_backends and run setup, "
                            "or pass --backend-url")
        return self.backend


def find_project(ls: LS, title: str) -> Any | None:
    """The project with exactly this title, None when there is none; two of them is an error."""
    with ls.errors("listing projects"):
        found = [p for p in ls.sdk.projects.list(title=title) if p.title == title]
    if len(found) > 1:
        raise SyncError(f"{len(found)} projects are titled {title!r} ({', '.join(str(p.id) for p in found)}): "
                        "rename one, or use --project ID")
    return found[0] if found else None


def resolve(ls: LS, args: Any) -> Context:
    """The project (by --project or by the title in --config) and its backend (--backend-url, the project file's
    first backend, or the first ML backend connected in Label Studio)."""
    cfg = config_mod.load(args.config) if getattr(args, "config", None) else None
    if getattr(args, "project", None):
        project_id = int(args.project)
    elif cfg is not None:
        found = find_project(ls, cfg.title)
        if found is None:
            raise SyncError(f"no project titled {cfg.title!r} in Label Studio: run `setup --config {args.config}` "
                            "first")
        project_id = found.id
    else:
        raise SyncError("say which project: --config project.yaml or --project ID", code=2)
    with ls.errors(f"reading project {project_id}"):
        project = ls.sdk.projects.get(id=project_id)
    user = getattr(args, "backend_user", None) or os.environ.get("LABELLOOP_BACKEND_USER")
    password = getattr(args, "backend_password", None) or os.environ.get("LABELLOOP_BACKEND_PASSWORD", "")
    backend: BackendHTTPClient | None = None
    if getattr(args, "backend_url", None):
        backend = BackendHTTPClient(args.backend_url, (user, password) if user else None)
    elif cfg is not None and cfg.backends:
        b = cfg.backends[0]
        backend = BackendHTTPClient(b.url, b.auth or ((user, password) if user else None))
    else:
        with ls.errors(f"listing the ML backends of project {project_id}"):
            connected = list(ls.sdk.ml.list(project=project_id))
        if connected:
            ml = connected[0]
            if getattr(ml, "basic_auth_user", None) and not user:
                user = ml.basic_auth_user
            backend = BackendHTTPClient(ml.url, (user, password) if user else None)
    return Context(ls, project_id, project.title or "", project.label_config or "", backend, cfg)


def iter_tasks(ctx: Context, fields: str = "all", query: dict | None = None) -> Iterator[Any]:
    """Every task of the project (annotations and predictions included with fields="all")."""
    import json

    kwargs: dict[str, Any] = {"project": ctx.project_id, "fields": fields, "page_size": 100}
    if query is not None:
        kwargs["query"] = json.dumps(query)
    with ctx.ls.errors(f"listing the tasks of project {ctx.project_id}"):
        yield from ctx.ls.sdk.tasks.list(**kwargs)


def plain(obj: Any) -> dict:
    """A dict from an SDK model or a dict."""
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else dict(obj)


def done_annotations(task: Any) -> list[dict]:
    """A task's annotations that were submitted, not cancelled (skipped)."""
    return [a for a in (plain(x) for x in (getattr(task, "annotations", None) or [])) if not a.get("was_cancelled")]
