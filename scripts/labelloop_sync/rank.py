"""`rank`: re-score the open tasks with the served model so Label Studio shows the most useful first.

The strategies are selection's (selection/registry.py). The backend's /predict scores every open task with the
strategy's uncertainty measure: a confidence in [0, 1], low = label first. A batch-aware strategy (the default
class_balanced, hybrid, kcenter, typiclust, ...) then picks a batch of `--batch` tasks from those confidences, the
predicted and the annotated labels, and for the diversity strategies the backend's /embed vectors of the open and
the labeled tasks, and writes its order into the scores: the batch gets 0, 1e-6, 2e-6, ... so it sorts first;
every other task keeps its confidence.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

import selection

from .context import Context, done_annotations, iter_tasks
from .errors import SyncError
from .predict import prediction_versions, to_predictions
from .project import set_model_version

# what rank can give a strategy: the backend's confidences, embeddings and predicted labels (not probabilities)
STRATEGIES = tuple(name for name, s in sorted(selection.STRATEGIES.items())
                   if s.needs <= {"confidence", "embeddings", "predicted"})
MEASURES = tuple(selection.MEASURES)


def first_label(result: list[dict] | None) -> str | None:
    """The first label a result list chose (a choice, a taxonomy path, a region's label): the task's class for
    class-balanced ranking. None when it chose nothing (those tasks form a class of their own)."""
    for item in result or []:
        chosen = (item.get("value") or {}).get(item.get("type"))
        if isinstance(chosen, list) and chosen:
            first = chosen[0]
            return " / ".join(map(str, first)) if isinstance(first, list) else str(first)
    return None


def _embed(ctx: Context, tasks: list[dict], batch_size: int) -> np.ndarray:
    backend = ctx.need_backend()
    vectors: list[Any] = []
    for start in tqdm(range(0, len(tasks), batch_size), desc="embed", unit="batch", disable=len(tasks) <= batch_size):
        answer = backend.embed(ctx.project_id, ctx.label_config, tasks[start:start + batch_size])
        vectors.extend(answer.get("embeddings") or [])
    if len(vectors) != len(tasks) or any(v is None for v in vectors):
        raise SyncError("the backend gave no embedding for some tasks: a diversity strategy needs one per task")
    return np.asarray(vectors, dtype=np.float64)


def _measure_for(backend, project: int, measure: str, explicit: bool) -> tuple[str, str | None]:
    """The measure to score by: the strategy's own when the project's scores can follow it (the backend's
    /health lists them for the project's config), else, said in the result, least confidence. A measure the user
    asked for is never swapped."""
    supported = backend.health(project).get("measures") or list(MEASURES)
    if measure in supported or explicit:
        return measure, None
    fallback = "least_confidence" if "least_confidence" in supported else supported[0]
    return fallback, f"this backend cannot score by {measure} (it can by {', '.join(supported)}): scored by {fallback}"


def run(ctx: Context, strategy: str | None = None, batch: int = 20, batch_size: int = 32,
        uncertainty: str | None = None) -> dict[str, Any]:
    """The `rank` command: returns the version, the number of tasks re-scored and the top of the queue.

    Args:
        strategy: one of `STRATEGIES`; None means `selection.DEFAULT`. One that needs embeddings fails with the
            backend's answer when the backend has no /embed (after one task, before scoring them all).
        batch: how many tasks a batch-aware strategy puts on top, in its order.
        batch_size: tasks per /predict and /embed request.
        uncertainty: the measure behind the confidences (default: the strategy's own).
    """
    name = strategy or selection.DEFAULT
    if name not in STRATEGIES:
        raise SyncError(f"unknown strategy {name!r} for rank; choose one of: {', '.join(STRATEGIES)}", code=2)
    chosen = selection.get(name)
    measure = uncertainty or chosen.measure
    if measure not in MEASURES:
        raise SyncError(f"unknown uncertainty {measure!r}; choose one of: {', '.join(MEASURES)}", code=2)
    backend = ctx.need_backend()
    served = backend.served_version(ctx.project_id)
    measure, note = _measure_for(backend, ctx.project_id, measure, explicit=uncertainty is not None)
    with ctx.ls.errors(f"reading project {ctx.project_id}"):
        needed = ctx.ls.sdk.projects.get(id=ctx.project_id).maximum_annotations or 1
    open_tasks, labeled, existing = [], [], {}
    for task in iter_tasks(ctx):
        item = {"id": task.id, "data": dict(task.data or {})}
        done = done_annotations(task)
        if len(done) >= needed:
            labeled.append({**item, "label": first_label(done[0].get("result"))})
            continue
        open_tasks.append(item)
        current = prediction_versions(task).get(served)
        if current is not None:
            existing[task.id] = current
    if "embeddings" in chosen.needs and open_tasks:
        _embed(ctx, open_tasks[:1], batch_size)  # a backend without /embed should not cost a whole scoring pass
    preds: list[dict] = []
    errors: list[str] = []
    for start in tqdm(range(0, len(open_tasks), batch_size), desc=f"score {measure}", unit="batch",
                      disable=len(open_tasks) <= batch_size):
        chunk = open_tasks[start:start + batch_size]
        answer = backend.predict(ctx.project_id, ctx.label_config, chunk, params={"uncertainty": measure})
        if answer.get("model_version") and answer["model_version"] != served:
            raise SyncError(f"the backend now serves {answer['model_version']} instead of {served}: run rank again")
        p, e = to_predictions(chunk, answer)
        preds.extend(p)
        errors.extend(e)
    if chosen.batch_aware and preds:
        _write_order(ctx, chosen, preds, open_tasks, labeled, batch, batch_size)
    written = _write(ctx, preds, existing)
    if preds:
        set_model_version(ctx.ls, ctx.project_id, served)
    top = [p["task"] for p in sorted(preds, key=lambda p: (p["score"] is None, p["score"]))[:10]]
    return {"model_version": served, "strategy": chosen.name, "uncertainty": measure, "note": note,
            "scored": len(preds),
            "written": written, "errors": errors, "top": top}


def _write_order(ctx: Context, chosen: selection.Strategy, preds: list[dict], open_tasks: list[dict],
                 labeled: list[dict], batch: int, batch_size: int) -> None:
    """Let a batch-aware strategy pick the batch and write its order into the predictions' scores."""
    conf = np.array([p["score"] if p["score"] is not None else 0.0 for p in preds])
    fields: dict[str, Any] = {"confidence": conf, "n_labeled": len(labeled)}
    if "predicted" in chosen.needs:
        classes: dict[str | None, int] = {}
        fields["predicted"] = [classes.setdefault(first_label(p["result"]), len(classes)) for p in preds]
        fields["labeled_classes"] = [classes.setdefault(t["label"], len(classes)) for t in labeled]
    if "embeddings" in chosen.needs:
        by_id = {t["id"]: t for t in open_tasks}
        fields["embeddings"] = _embed(ctx, [by_id[p["task"]] for p in preds], batch_size)
        if labeled:
            fields["labeled_embeddings"] = _embed(ctx, [{"id": t["id"], "data": t["data"]} for t in labeled],
                                                  batch_size)
    order = chosen.order(selection.Pool(**fields), batch)
    for p, score in zip(preds, selection.scores(conf, order)):
        p["score"] = float(score)


def _write(ctx: Context, preds: list[dict], existing: dict[int, dict]) -> int:
    """Create missing predictions in bulk; update those of the same version whose score or result changed."""
    new = [p for p in preds if p["task"] not in existing]
    changed = [p for p in preds if p["task"] in existing
               and (existing[p["task"]].get("score") != p["score"] or existing[p["task"]].get("result") != p["result"])]
    for start in range(0, len(new), 500):
        with ctx.ls.errors(f"writing {len(new[start:start + 500])} predictions"):
            ctx.ls.sdk.projects.import_predictions(ctx.project_id, request=new[start:start + 500])
    for p in tqdm(changed, desc="update scores", unit="task", disable=len(changed) < 50):
        with ctx.ls.errors(f"updating the prediction of task {p['task']}"):
            ctx.ls.sdk.predictions.update(existing[p["task"]]["id"], result=p["result"], score=p["score"],
                                          model_version=p["model_version"])
    return len(new) + len(changed)
