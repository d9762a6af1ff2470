"""`rank`: re-score the open tasks with the served model so Label Studio shows the most useful first.

least_confidence, margin and entropy ask the backend's /predict for that uncertainty score. kcenter adds
diversity: k-center greedy over the backend's /embed vectors, weighted by uncertainty, picks a batch of tasks that
are uncertain and unlike each other (and unlike what is labeled), so the top of the queue is not near-duplicates.
The batch gets the lowest scores (0, 1e-6, 2e-6, ...) so it sorts first; the other tasks keep their confidence.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from .context import Context, done_annotations, iter_tasks
from .errors import SyncError
from .predict import prediction_versions, to_predictions
from .project import set_model_version

STRATEGIES = ("least_confidence", "margin", "entropy", "kcenter")
BATCH_STEP = 1e-6


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def kcenter_order(confidence: np.ndarray, embeddings: np.ndarray, k: int,
                  centers: np.ndarray | None = None) -> list[int]:
    """Indices of a diverse, uncertain batch of at most k tasks, in pick order.

    Each pick maximises (uncertainty + 0.05) * (cosine distance to the nearest task already picked or labeled):
    a near-duplicate of a picked task has distance about 0 and waits until nothing else is left.

    Args:
        confidence: (n,) confidences in [0, 1].
        embeddings: (n, d) vectors.
        k: batch size.
        centers: (m, d) vectors of labeled tasks, covered already.
    """
    n = len(confidence)
    if n == 0 or k <= 0:
        return []
    emb = _normalize(np.asarray(embeddings, dtype=np.float64))
    weight = (1.0 - np.clip(np.asarray(confidence, dtype=np.float64), 0, 1)) + 0.05
    nearest = np.full(n, 1.0)
    if centers is not None and len(centers):
        sims = emb @ _normalize(np.asarray(centers, dtype=np.float64)).T
        nearest = np.clip(1.0 - sims.max(axis=1), 0.0, 2.0)
    picked: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        gain = np.where(available, weight * nearest, -np.inf)
        i = int(np.argmax(gain))
        picked.append(i)
        available[i] = False
        nearest = np.minimum(nearest, np.clip(1.0 - emb @ emb[i], 0.0, 2.0))
    return picked


def _embed(ctx: Context, tasks: list[dict], batch_size: int) -> np.ndarray:
    backend = ctx.need_backend()
    vectors: list[Any] = []
    for start in tqdm(range(0, len(tasks), batch_size), desc="embed", unit="batch", disable=len(tasks) <= batch_size):
        answer = backend.embed(ctx.project_id, ctx.label_config, tasks[start:start + batch_size])
        vectors.extend(answer.get("embeddings") or [])
    if len(vectors) != len(tasks) or any(v is None for v in vectors):
        raise SyncError("the backend gave no embedding for some tasks: kcenter needs one per task")
    return np.asarray(vectors, dtype=np.float64)


def run(ctx: Context, strategy: str = "least_confidence", batch: int = 20, batch_size: int = 32,
        uncertainty: str = "least_confidence") -> dict[str, Any]:
    """The `rank` command: returns the version, the number of tasks re-scored and the top of the queue."""
    if strategy not in STRATEGIES:
        raise SyncError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}", code=2)
    backend = ctx.need_backend()
    served = backend.served_version(ctx.project_id)
    with ctx.ls.errors(f"reading project {ctx.project_id}"):
        needed = ctx.ls.sdk.projects.get(id=ctx.project_id).maximum_annotations or 1
    open_tasks, labeled, existing = [], [], {}
    for task in iter_tasks(ctx):
        item = {"id": task.id, "data": dict(task.data or {})}
        if len(done_annotations(task)) >= needed:
            labeled.append(item)
            continue
        open_tasks.append(item)
        current = prediction_versions(task).get(served)
        if current is not None:
            existing[task.id] = current
    params = {"uncertainty": uncertainty if strategy == "kcenter" else strategy}
    preds: list[dict] = []
    errors: list[str] = []
    for start in tqdm(range(0, len(open_tasks), batch_size), desc=f"score {strategy}", unit="batch",
                      disable=len(open_tasks) <= batch_size):
        chunk = open_tasks[start:start + batch_size]
        answer = backend.predict(ctx.project_id, ctx.label_config, chunk, params=params)
        if answer.get("model_version") and answer["model_version"] != served:
            raise SyncError(f"the backend now serves {answer['model_version']} instead of {served}: run rank again")
        p, e = to_predictions(chunk, answer)
        preds.extend(p)
        errors.extend(e)
    if strategy == "kcenter" and preds:
        by_id = {t["id"]: t for t in open_tasks}
        conf = np.array([p["score"] if p["score"] is not None else 0.0 for p in preds])
        emb = _embed(ctx, [by_id[p["task"]] for p in preds], batch_size)
        centers = _embed(ctx, labeled, batch_size) if labeled else None
        order = kcenter_order(conf, emb, batch, centers)
        floor = BATCH_STEP * len(order)
        for p in preds:
            p["score"] = max(float(p["score"] or 0.0), floor)
        for position, i in enumerate(order):
            preds[i]["score"] = position * BATCH_STEP
    written = _write(ctx, preds, existing)
    if preds:
        set_model_version(ctx.ls, ctx.project_id, served)
    top = [p["task"] for p in sorted(preds, key=lambda p: (p["score"] is None, p["score"]))[:10]]
    return {"model_version": served, "strategy": strategy, "scored": len(preds), "written": written,
            "errors": errors, "top": top}


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
