"""`predict`: batch pre-annotation through a backend's /predict, resumable.

Predictions are written to Label Studio after every batch, and a task that already holds a prediction of the
served model version is skipped, so an interrupted run picks up where it stopped.
"""
from __future__ import annotations

from typing import Any

from tqdm import tqdm

from .context import Context, iter_tasks, plain
from .errors import SyncError
from .project import set_model_version


def prediction_versions(task: Any) -> dict[str, dict]:
    """The task's predictions by model version (the newest of each)."""
    out: dict[str, dict] = {}
    for p in (plain(x) for x in (getattr(task, "predictions", None) or [])):
        if p.get("model_version") is not None:
            out[str(p["model_version"])] = p
    return out


def to_predictions(tasks: list[dict], answer: dict) -> tuple[list[dict], list[str]]:
    """Label Studio predictions from a /predict answer, and the errors of tasks the backend could not predict."""
    version = answer.get("model_version")
    preds, errors = [], []
    for task, result in zip(tasks, answer["results"]):
        if not isinstance(result, dict) or "result" not in result:
            errors.append(f"task {task['id']}: {(result or {}).get('error', 'no result')}")
            continue
        preds.append({"task": task["id"], "result": result["result"], "score": result.get("score"),
                      "model_version": result.get("model_version") or version})
    return preds, errors


def run(ctx: Context, limit: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """The `predict` command: returns counts and the version written."""
    backend = ctx.need_backend()
    served = backend.served_version(ctx.project_id)
    todo, done = [], 0
    for task in iter_tasks(ctx):
        if served in prediction_versions(task):
            done += 1
        else:
            todo.append({"id": task.id, "data": dict(task.data or {})})
    if limit is not None:
        todo = todo[:max(0, limit)]
    written, errors = 0, []
    with tqdm(total=len(todo), desc=f"predict {served}", unit="task", disable=not todo) as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            answer = backend.predict(ctx.project_id, ctx.label_config, chunk)
            if answer.get("model_version") and answer["model_version"] != served:
                # a training run published meanwhile: stop so the rest is not mixed across versions
                raise SyncError(f"the backend now serves {answer['model_version']} instead of {served}: "
                                "run predict again")
            preds, errs = to_predictions(chunk, answer)
            errors.extend(errs)
            if preds:
                with ctx.ls.errors(f"writing {len(preds)} predictions"):
                    ctx.ls.sdk.projects.import_predictions(ctx.project_id, request=preds)
            written += len(preds)
            bar.update(len(chunk))
    version_set = False
    if written or done:
        # Label Studio sorts "Prediction score" over the project's model version only
        version_set = set_model_version(ctx.ls, ctx.project_id, served)
    return {"model_version": served, "predicted": written, "already": done, "errors": errors,
            "model_version_set": version_set}
