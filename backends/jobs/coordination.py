"""How a training job runs: coalesced while queued, one run at a time per project, lost runs detected.

The same code runs in both modes (threads of the serving process, or RQ work-horses), over a `JobStore`:

* `_submit` queues a job unless one is queued already for the project (a later request "coalesces" into it);
* `_execute` runs it: it takes the project's lock or defers, calls the job function, queues a follow-up if a
  deferred request is pending, and writes the final record;
* while a job executes, a heartbeat renews its liveness mark every few seconds; a job whose process died (a
  killed RQ work-horse) stops beating, and `_lost` marks it failed with the reason, frees its lock and starts
  the deferred run. RQ reports the death at once (`worker.TrainingWorker`); else the next job of the project
  that finds the dead job's lock notices it.
"""
from __future__ import annotations

import importlib
import json
import logging
import threading
import uuid
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable, Optional

from .stores import JobStore

logger = logging.getLogger(__name__)

JOINED_KEPT = 20  # reasons of joining requests kept on a queued job (a burst of annotations adds one each)
RESULT_PREFIX = "result:"  # outcome totals under this prefix count what succeeded jobs did with their model
FINAL = frozenset({"succeeded", "failed", "deferred"})
ACTIVE = frozenset({"queued", "running"})
LOCK_MARGIN = 60  # a lock outlives the job timeout a little, so a lock nobody frees still expires
# A running job renews its heartbeat every BEAT_TTL / 3 s; one silent for BEAT_TTL s counts as dead. Long enough
# for a busy process (the renewal is a thread, and PyTorch releases the GIL), short enough to free a project soon.
BEAT_TTL = 30

JobFunc = Callable[[str, int, bool], Optional[dict]]  # f(backend, project_id, force) -> result
Enqueue = Callable[[int, str, bool], None]


def _now() -> str:
    # Microseconds keep records created in the same second in order.
    return datetime.now(timezone.utc).isoformat()


def import_func(path: str) -> Callable[..., Any]:
    """The function a dotted path names ("backends.training.train_project").

    Args:
        path: module path and attribute name, joined by a dot.

    Returns:
        The callable; ValueError if the path does not name one.
    """
    module, _, name = path.rpartition(".")
    if not module or not name:
        raise ValueError(f"not a dotted function path: {path!r}")
    func = getattr(importlib.import_module(module), name, None)
    if not callable(func):
        raise ValueError(f"{path!r} is not a function")
    return func


def job_path(func: JobFunc | str) -> str:
    """The dotted path under which another process (an RQ worker) imports `func`.

    Only the function travels: arguments bound with `functools.partial` (the serving adapter, the app's
    settings) stay in this process, and the worker reads its own settings from its environment.

    Args:
        func: a module-level function, a `functools.partial` of one, or a dotted path already.

    Returns:
        "module.function"; ValueError for lambdas, nested functions and other callables without a path.
    """
    if isinstance(func, str):
        return func
    while isinstance(func, partial):
        func = func.func
    module, name = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or not name.isidentifier():
        raise ValueError(f"{func!r} has no importable dotted path; pass a module-level function")
    return f"{module}.{name}"


def _error_text(exc: BaseException, limit: int = 1000) -> str:
    # Only the message reaches the record (and the API); the traceback goes to the log.
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(result: Any) -> dict:
    if result is None:
        return {}
    if not isinstance(result, dict):
        result = {"value": result}
    return json.loads(json.dumps(result, default=str))


class _Heartbeat:
    """Marks a job alive now and every `ttl / 3` seconds until the block ends; then drops the mark."""

    def __init__(self, store: JobStore, job_id: str, ttl: int):
        self.store, self.job_id, self.ttl = store, job_id, max(1, int(ttl))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.store.beat(self.job_id, self.ttl)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.store.beat(self.job_id, self.ttl)
            except Exception as e:  # Redis away for a moment: the next beat may get through
                logger.warning("job %s: heartbeat not recorded: %s", self.job_id, e)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.store.end_beat(self.job_id)
        except Exception as e:  # the mark expires by itself
            logger.warning("job %s: heartbeat not cleared: %s", self.job_id, e)


def _finish(store: JobStore, job_id: str, status: str, **fields: Any) -> dict:
    """Write a job's final status and count it, once: a job reported lost and its own late end cannot both."""
    outcomes = [status]
    result = fields.get("result")
    if status == "succeeded" and isinstance(result, dict) and result.get("status"):
        outcomes.append(f"{RESULT_PREFIX}{result['status']}")
    if not store.finish(job_id, ACTIVE, outcomes, status=status, finished=_now(), **fields):
        record = store.get(job_id)
        if record is not None:
            logger.warning("job %s already ended (%s); its %s is not recorded", job_id, record.get("status"), status)
    return store.get(job_id) or {"id": job_id, "status": status, **fields}


def _submit(store: JobStore, enqueue: Enqueue, project_id: int, reason: str, force: bool, ttl: int) -> dict:
    """Queue a run for a project unless one is queued already."""
    job_id = uuid.uuid4().hex
    existing = store.claim_queued(project_id, job_id, ttl)
    if existing is not None:
        # Keep who joined on the record, so /jobs shows that e.g. a "Start training" press was taken up.
        joined = ((store.get(existing) or {}).get("joined") or [])[-(JOINED_KEPT - 1):] + [reason]
        # The queued job reads `force` from its record when it starts, so it can still be upgraded.
        store.update(existing, joined=joined, **({"force": True} if force else {}))
        return {"status": "coalesced", "job_id": existing}
    store.save({"id": job_id, "backend": store.backend, "project_id": int(project_id), "reason": reason,
                "force": bool(force), "status": "queued", "created": _now(), "started": None,
                "finished": None, "result": None, "error": None, "follow_up": None, "joined": []})
    try:
        enqueue(int(project_id), job_id, bool(force))
    except Exception as e:
        store.release_queued(project_id, job_id)
        _finish(store, job_id, "failed", error=f"could not queue the job: {_error_text(e)}")
        raise
    logger.info("%s project %s: queued training job %s (%s)", store.backend, project_id, job_id, reason)
    return {"status": "queued", "job_id": job_id}


def _follow_up(store: JobStore, enqueue: Enqueue | None, project_id: int, job_id: str, ttl: int) -> str | None:
    """Queue the one run that requests deferred during `job_id` wait for; its id, or None when none is due."""
    if enqueue is None or not store.pop_pending(project_id):
        return None
    try:
        return _submit(store, enqueue, project_id, f"follow-up: annotations during {job_id}", False, ttl)["job_id"]
    except Exception:
        logger.exception("%s project %s: could not queue the follow-up of %s", store.backend, project_id, job_id)
        return None


def _lost(store: JobStore, enqueue: Enqueue | None, project_id: int, job_id: str, reason: str,
          ttl: int) -> dict | None:
    """A job whose process died: mark it failed with `reason`, free its project, start the deferred run.

    Args:
        enqueue: queues the follow-up; None when the caller runs next itself (its run covers the deferrals).

    Returns:
        The final record, or None when the job had ended already (or is unknown).
    """
    record = store.get(job_id)
    store.release_lock(project_id, job_id)
    store.release_queued(project_id, job_id)
    if record is None or record.get("status") in FINAL:
        return None
    logger.warning("%s project %s: training job %s lost: %s", store.backend, project_id, job_id, reason)
    follow_up = _follow_up(store, enqueue, project_id, job_id, ttl)
    return _finish(store, job_id, "failed", error=reason, follow_up=follow_up)


def _take_lock(store: JobStore, project_id: int, job_id: str, ttl: int, beat_ttl: int) -> bool:
    """Take the project's lock; a holder that stopped beating is dead, so it is marked lost and the lock taken."""
    if store.acquire_lock(project_id, job_id, ttl):
        return True
    holder = store.lock_holder(project_id)
    if holder is None or holder == job_id or store.alive(holder):
        return False
    _lost(store, None, project_id, holder,
          f"lost: no heartbeat for {beat_ttl} s (the process running it died, e.g. killed for memory)", ttl)
    return store.acquire_lock(project_id, job_id, ttl)


def _execute(store: JobStore, enqueue: Enqueue, project_id: int, job_id: str, force: bool,
             job_func: JobFunc | str, ttl: int, beat_ttl: int = BEAT_TTL) -> dict:
    """Run one job, beating while it runs.

    Args:
        job_func: called as `job_func(backend, project_id, force)`; a dotted path is imported first.
        ttl: seconds the project's lock and queued slot live at most.
        beat_ttl: seconds without a heartbeat after which the job counts as dead.

    Returns:
        The job's final record.
    """
    with _Heartbeat(store, job_id, beat_ttl):
        status, fields = _run(store, enqueue, project_id, job_id, force, job_func, ttl, beat_ttl)
    # The mark is gone before the record says the job ended: whoever sees the end never sees it alive.
    return _finish(store, job_id, status, **fields)


def _run(store: JobStore, enqueue: Enqueue, project_id: int, job_id: str, force: bool, job_func: JobFunc | str,
         ttl: int, beat_ttl: int) -> tuple[str, dict]:
    """Take the project's lock or defer, call `job_func`, queue a follow-up if one is due; the outcome to record."""
    backend = store.backend
    if not _take_lock(store, project_id, job_id, ttl, beat_ttl):
        # Leave the queued slot before raising the flag: a request that joined this job must be covered by
        # the flag, and one arriving later queues a job of its own.
        store.release_queued(project_id, job_id)
        store.set_pending(project_id, ttl)
        # The holder may have released and checked the flag between our two tries; try once more so a
        # flag set too late for it is never left without a run.
        if not _take_lock(store, project_id, job_id, ttl, beat_ttl):
            logger.info("%s project %s: job %s deferred, a run is in progress", backend, project_id, job_id)
            return "deferred", {}
    # This run reads every annotation made so far, so earlier deferrals are covered by it.
    store.pop_pending(project_id)
    # Requests that joined this job up to now are covered too: the job function reads its data after this.
    store.release_queued(project_id, job_id)
    force = bool(force or (store.get(job_id) or {}).get("force"))
    store.update(job_id, status="running", started=_now())
    result: dict | None = None
    error: str | None = None
    try:
        try:
            func = import_func(job_func) if isinstance(job_func, str) else job_func
            result = _jsonable(func(backend, project_id, force))
        except Exception as e:
            logger.exception("%s project %s: training job %s failed", backend, project_id, job_id)
            error = _error_text(e)
    finally:
        store.release_lock(project_id, job_id)
    follow_up = _follow_up(store, enqueue, project_id, job_id, ttl)
    status = "failed" if error is not None else "succeeded"
    return status, {"result": result, "error": error, "follow_up": follow_up}
