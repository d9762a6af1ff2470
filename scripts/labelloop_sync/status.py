"""`status`: tasks, labeled, predicted, served model version per backend, agreement and backend health."""
from __future__ import annotations

from typing import Any

from .agreement import task_agreement
from .backend_client import BackendHTTPClient
from .context import Context, done_annotations, iter_tasks
from .errors import SyncError
from .predict import prediction_versions
from .project import model_versions


def run(ctx: Context) -> dict[str, Any]:
    with ctx.ls.errors(f"reading project {ctx.project_id}"):
        project = ctx.ls.sdk.projects.get(id=ctx.project_id)
        mls = list(ctx.ls.sdk.ml.list(project=ctx.project_id))
    needed = project.maximum_annotations or 1
    tasks = labeled = completed = 0
    predicted: dict[str, int] = {}
    agreements: list[float] = []
    for task in iter_tasks(ctx):
        tasks += 1
        done = done_annotations(task)
        labeled += bool(done)
        completed += len(done) >= needed
        for version in prediction_versions(task):
            predicted[version] = predicted.get(version, 0) + 1
        a = task_agreement(done)
        if a is not None:
            agreements.append(a)
    auth = {b.url: b.auth for b in (ctx.config.backends if ctx.config else [])}
    if ctx.backend is not None:
        auth.setdefault(ctx.backend.url, ctx.backend.auth)
    backends = []
    for ml in mls:
        url = (ml.url or "").rstrip("/")
        entry: dict[str, Any] = {"id": ml.id, "title": ml.title, "url": url, "state": ml.state}
        try:
            health = BackendHTTPClient(url, auth.get(url), timeout=15).health(ctx.project_id)
            entry.update(health="UP" if health.get("status") == "UP" else str(health.get("status")),
                         model_version=health.get("model_version"),
                         predicted_tasks=predicted.get(str(health.get("model_version")), 0))
            if health.get("last_training_failure"):
                entry["last_training_failure"] = health["last_training_failure"]
        except SyncError as e:
            entry.update(health="DOWN", error=str(e))
        backends.append(entry)
    return {"project": ctx.project_id, "title": project.title, "tasks": tasks, "labeled": labeled,
            "completed": completed, "annotations_per_task": needed,
            "predicted": predicted, "model_version": project.model_version or None,
            "model_versions": model_versions(ctx.ls, ctx.project_id),
            "agreement": {"tasks": len(agreements),
                          "mean": round(sum(agreements) / len(agreements), 4) if agreements else None},
            "backends": backends}


def render(s: dict[str, Any]) -> str:
    """A short human summary of `run`'s result."""
    lines = [f"project {s['project']} {s['title']!r}: {s['tasks']} tasks, {s['labeled']} labeled, "
             f"{s['completed']} completed ({s['annotations_per_task']} annotation(s) each)",
             "predictions by version: " + (", ".join(f"{v}={n}" for v, n in sorted(s["predicted"].items()))
                                            or "none"),
             f"project model version: {s['model_version'] or '(not set)'}"]
    ag = s["agreement"]
    lines.append(f"agreement: {ag['mean']:.3f} over {ag['tasks']} overlapping tasks" if ag["tasks"]
                 else "agreement: no task has two annotations yet")
    for b in s["backends"]:
        if b["health"] == "DOWN":
            lines.append(f"backend {b['id']} {b['title']!r} {b['url']}: DOWN ({b['error']})")
        else:
            fail = f"; last training failure: {b['last_training_failure'].get('error')}" \
                if b.get("last_training_failure") else ""
            lines.append(f"backend {b['id']} {b['title']!r} {b['url']}: {b['health']}, serves {b['model_version']} "
                         f"({b['predicted_tasks']} tasks predicted by it){fail}")
    if not s["backends"]:
        lines.append("no ML backend connected")
    return "\n".join(lines)
