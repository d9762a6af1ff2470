"""Training jobs: coalesced, and one run at a time per (backend, project).

Label Studio sends a webhook per annotation; training on each one would queue hundreds of runs. So:

* a job that is queued but not started absorbs later requests for the same project ("coalesced");
* a job that starts while another runs for the same project takes no turn: it sets a "follow-up pending"
  flag and ends as "deferred";
* the running job, when done, releases its lock and then takes the flag (get-and-delete): if it was set,
  it queues exactly one follow-up, which trains on everything annotated meanwhile.

With REDIS_URL the state lives in Redis and jobs run in `rq worker --url $REDIS_URL labelloop-train`
(any number of workers, on any host that shares MODEL_DIR); without it, in a few daemon threads of this
process with the state in memory. Both modes run the same coordination code over a small store interface.
"""
from __future__ import annotations

import importlib
import json
import logging
import queue
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any, Callable

from .config import Settings

logger = logging.getLogger(__name__)

QUEUE_NAME = "labelloop-train"
KEY_PREFIX = "labelloop:"
HISTORY = 50  # job records kept per (backend, project)
JOINED_KEPT = 20  # reasons of joining requests kept on a queued job (a burst of annotations adds one each)
RESULT_PREFIX = "result:"  # outcome totals under this prefix count what succeeded jobs did with their model
FINAL = frozenset({"succeeded", "failed", "deferred"})
RESULT_TTL = 24 * 3600  # how long RQ keeps its own copy of a finished job
LOCK_MARGIN = 60  # a lock outlives the job timeout a little, so a killed job's lock still expires

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


# state stores


class JobStore(ABC):
    """The shared state of one backend's training jobs: counters, slots, locks and job records."""

    def __init__(self, backend: str):
        self.backend = backend

    @abstractmethod
    def count_event(self, project_id: int, every: int) -> tuple[int, bool]:
        """Count one annotation event; when the count reaches `every` (> 0), reset it.

        Returns:
            (pending count, whether training is due).
        """

    @abstractmethod
    def claim_queued(self, project_id: int, job_id: str, ttl: int) -> str | None:
        """Make `job_id` the project's queued job unless one is queued already.

        Returns:
            None when claimed, else the id of the job already queued.
        """

    @abstractmethod
    def release_queued(self, project_id: int, job_id: str) -> None:
        """Clear the queued slot if `job_id` holds it."""

    @abstractmethod
    def acquire_lock(self, project_id: int, job_id: str, ttl: int) -> bool:
        """Take the project's run lock for `job_id`; False if another job holds it."""

    @abstractmethod
    def release_lock(self, project_id: int, job_id: str) -> None:
        """Release the run lock if `job_id` holds it (an expired lock may belong to another job now)."""

    @abstractmethod
    def set_pending(self, project_id: int, ttl: int) -> None:
        """Note that a follow-up run is wanted."""

    @abstractmethod
    def pop_pending(self, project_id: int) -> bool:
        """Atomically read and clear the follow-up flag."""

    @abstractmethod
    def save(self, record: dict) -> None:
        """Store a new job record, dropping the project's records beyond `HISTORY`."""

    @abstractmethod
    def update(self, job_id: str, **fields: Any) -> None:
        """Change fields of an existing record (a record already dropped stays dropped)."""

    @abstractmethod
    def get(self, job_id: str) -> dict | None:
        """One record, or None."""

    @abstractmethod
    def records(self, project_id: int | None, limit: int) -> list[dict]:
        """Records newest first, of one project or of all."""

    @abstractmethod
    def count_outcome(self, status: str) -> None:
        """Add one to the total of a final status."""

    @abstractmethod
    def outcomes(self) -> dict[str, int]:
        """Totals per final status."""


class MemoryStore(JobStore):
    """State in this process, for running without Redis."""

    def __init__(self, backend: str):
        super().__init__(backend)
        self._lock = threading.Lock()
        self._counts: Counter[int] = Counter()
        self._queued: dict[int, tuple[str, float]] = {}
        self._locks: dict[int, tuple[str, float]] = {}
        self._pending: set[int] = set()
        self._records: dict[str, dict] = {}
        self._index: dict[int, deque[str]] = {}
        self._outcomes: Counter[str] = Counter()

    @staticmethod
    def _holder(slots: dict[int, tuple[str, float]], project_id: int) -> str | None:
        held = slots.get(project_id)
        if held is None or held[1] < time.monotonic():
            return None
        return held[0]

    def count_event(self, project_id: int, every: int) -> tuple[int, bool]:
        with self._lock:
            self._counts[project_id] += 1
            n = self._counts[project_id]
            if every > 0 and n >= every:
                self._counts[project_id] = 0
                return n, True
            return n, False

    def claim_queued(self, project_id: int, job_id: str, ttl: int) -> str | None:
        with self._lock:
            holder = self._holder(self._queued, project_id)
            if holder is not None:
                return holder
            self._queued[project_id] = (job_id, time.monotonic() + ttl)
            return None

    def release_queued(self, project_id: int, job_id: str) -> None:
        with self._lock:
            if self._queued.get(project_id, ("",))[0] == job_id:
                del self._queued[project_id]

    def acquire_lock(self, project_id: int, job_id: str, ttl: int) -> bool:
        with self._lock:
            if self._holder(self._locks, project_id) is not None:
                return False
            self._locks[project_id] = (job_id, time.monotonic() + ttl)
            return True

    def release_lock(self, project_id: int, job_id: str) -> None:
        with self._lock:
            if self._locks.get(project_id, ("",))[0] == job_id:
                del self._locks[project_id]

    def set_pending(self, project_id: int, ttl: int) -> None:
        with self._lock:
            self._pending.add(project_id)

    def pop_pending(self, project_id: int) -> bool:
        with self._lock:
            if project_id in self._pending:
                self._pending.discard(project_id)
                return True
            return False

    def save(self, record: dict) -> None:
        with self._lock:
            ids = self._index.setdefault(record["project_id"], deque())
            ids.appendleft(record["id"])
            self._records[record["id"]] = dict(record)
            while len(ids) > HISTORY:
                self._records.pop(ids.pop(), None)

    def update(self, job_id: str, **fields: Any) -> None:
        with self._lock:
            if job_id in self._records:
                self._records[job_id].update(fields)

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            record = self._records.get(job_id)
            return None if record is None else json.loads(json.dumps(record))

    def records(self, project_id: int | None, limit: int) -> list[dict]:
        with self._lock:
            pids = list(self._index) if project_id is None else [project_id]
            found = [self._records[i] for p in pids for i in list(self._index.get(p, ()))[:limit]]
            found.sort(key=lambda r: r["created"], reverse=True)
            return json.loads(json.dumps(found[:limit]))

    def count_outcome(self, status: str) -> None:
        with self._lock:
            self._outcomes[status] += 1

    def outcomes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._outcomes)


_COUNT = """
local n = redis.call('INCR', KEYS[1])
local every = tonumber(ARGV[1])
if every > 0 and n >= every then
  redis.call('SET', KEYS[1], 0)
  return {n, 1}
end
return {n, 0}
"""
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""


class RedisStore(JobStore):
    """State in Redis, shared by the web processes and the RQ workers.

    Keys: `labelloop:<backend>:<project>:{count,queued,lock,pending,jobs}`, `labelloop:job:<id>` (a hash
    of JSON-encoded fields), `labelloop:<backend>:projects` and `labelloop:<backend>:outcomes`.
    """

    def __init__(self, connection: Any, backend: str):
        super().__init__(backend)
        self.redis = connection
        self._count = connection.register_script(_COUNT)
        self._claim = connection.register_script(_CLAIM)
        self._release = connection.register_script(_RELEASE)
        self._update = connection.register_script(_UPDATE)

    def _key(self, project_id: int, what: str) -> str:
        return f"{KEY_PREFIX}{self.backend}:{int(project_id)}:{what}"

    @staticmethod
    def _record_key(job_id: str) -> str:
        return f"{KEY_PREFIX}job:{job_id}"

    def count_event(self, project_id: int, every: int) -> tuple[int, bool]:
        n, due = self._count(keys=[self._key(project_id, "count")], args=[int(every)])
        return int(n), bool(due)

    def claim_queued(self, project_id: int, job_id: str, ttl: int) -> str | None:
        holder = self._claim(keys=[self._key(project_id, "queued")], args=[job_id, int(ttl)])
        return None if holder is None else holder.decode()

    def release_queued(self, project_id: int, job_id: str) -> None:
        self._release(keys=[self._key(project_id, "queued")], args=[job_id])

    def acquire_lock(self, project_id: int, job_id: str, ttl: int) -> bool:
        return bool(self.redis.set(self._key(project_id, "lock"), job_id, nx=True, ex=int(ttl)))

    def release_lock(self, project_id: int, job_id: str) -> None:
        self._release(keys=[self._key(project_id, "lock")], args=[job_id])

    def set_pending(self, project_id: int, ttl: int) -> None:
        self.redis.set(self._key(project_id, "pending"), 1, ex=int(ttl))

    def pop_pending(self, project_id: int) -> bool:
        return self.redis.getdel(self._key(project_id, "pending")) is not None

    def save(self, record: dict) -> None:
        index = self._key(record["project_id"], "jobs")
        pipe = self.redis.pipeline()
        pipe.hset(self._record_key(record["id"]), mapping={k: json.dumps(v) for k, v in record.items()})
        pipe.lpush(index, record["id"])
        pipe.sadd(f"{KEY_PREFIX}{self.backend}:projects", int(record["project_id"]))
        pipe.lrange(index, HISTORY, -1)
        pipe.ltrim(index, 0, HISTORY - 1)
        dropped = pipe.execute()[3]
        if dropped:
            self.redis.delete(*(self._record_key(i.decode()) for i in dropped))

    def update(self, job_id: str, **fields: Any) -> None:
        args = [part for k, v in fields.items() for part in (k, json.dumps(v))]
        self._update(keys=[self._record_key(job_id)], args=args)

    @staticmethod
    def _decode(raw: dict) -> dict | None:
        if not raw:
            return None
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def get(self, job_id: str) -> dict | None:
        return self._decode(self.redis.hgetall(self._record_key(job_id)))

    def records(self, project_id: int | None, limit: int) -> list[dict]:
        if project_id is None:
            pids = [int(p) for p in self.redis.smembers(f"{KEY_PREFIX}{self.backend}:projects")]
        else:
            pids = [project_id]
        ids = [i.decode() for p in pids for i in self.redis.lrange(self._key(p, "jobs"), 0, limit - 1)]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._record_key(job_id))
        found = [r for r in map(self._decode, pipe.execute() if ids else []) if r is not None]
        found.sort(key=lambda r: r["created"], reverse=True)
        return found[:limit]

    def count_outcome(self, status: str) -> None:
        self.redis.hincrby(f"{KEY_PREFIX}{self.backend}:outcomes", status, 1)

    def outcomes(self) -> dict[str, int]:
        raw = self.redis.hgetall(f"{KEY_PREFIX}{self.backend}:outcomes")
        return {k.decode(): int(v) for k, v in raw.items()}


# the coordination, shared by both modes


def _finish(store: JobStore, job_id: str, status: str, **fields: Any) -> dict:
    store.update(job_id, status=status, finished=_now(), **fields)
    store.count_outcome(status)
    result = fields.get("result")
    if status == "succeeded" and isinstance(result, dict) and result.get("status"):
        store.count_outcome(f"{RESULT_PREFIX}{result['status']}")
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


def _execute(store: JobStore, enqueue: Enqueue, project_id: int, job_id: str, force: bool, job_func: str,
             ttl: int) -> dict:
    """Run one job: take the project's lock or defer, call `job_func`, queue a follow-up if one is due.

    Returns:
        The job's final record.
    """
    backend = store.backend
    if not store.acquire_lock(project_id, job_id, ttl):
        # Leave the queued slot before raising the flag: a request that joined this job must be covered by
        # the flag, and one arriving later queues a job of its own.
        store.release_queued(project_id, job_id)
        store.set_pending(project_id, ttl)
        # The holder may have released and checked the flag between our two tries; try once more so a
        # flag set too late for it is never left without a run.
        if not store.acquire_lock(project_id, job_id, ttl):
            logger.info("%s project %s: job %s deferred, a run is in progress", backend, project_id, job_id)
            return _finish(store, job_id, "deferred")
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
            result = _jsonable(import_func(job_func)(backend, project_id, force))
        except Exception as e:
            logger.exception("%s project %s: training job %s failed", backend, project_id, job_id)
            error = _error_text(e)
    finally:
        store.release_lock(project_id, job_id)
    follow_up = None
    if store.pop_pending(project_id):
        try:
            follow_up = _submit(store, enqueue, project_id, f"follow-up: annotations during {job_id}", False,
                                ttl)["job_id"]
        except Exception:
            logger.exception("%s project %s: could not queue the follow-up of %s", backend, project_id, job_id)
    status = "failed" if error is not None else "succeeded"
    return _finish(store, job_id, status, result=result, error=error, follow_up=follow_up)


# RQ mode


def _rq_enqueuer(rq_queue: Any, backend: str, job_func: str, timeout: int) -> Enqueue:
    from rq import Callback

    def enqueue(project_id: int, job_id: str, force: bool) -> None:
        rq_queue.enqueue(run_job, args=(backend, project_id, job_id, force, job_func), job_id=job_id,
                         job_timeout=timeout, result_ttl=RESULT_TTL, failure_ttl=RESULT_TTL,
                         description=f"train {backend} project {project_id}",
                         on_failure=Callback(_rq_job_lost), on_stopped=Callback(_rq_job_stopped))

    return enqueue


def run_job(backend: str, project_id: int, job_id: str, force: bool, job_func: str) -> dict:
    """The RQ entry point: coordinate and run one training job inside an RQ worker.

    Args:
        backend: backend name.
        project_id: Label Studio project id.
        job_id: the job's record id (also its RQ job id).
        force: passed on to `job_func`.
        job_func: dotted path of `f(backend, project_id, force) -> dict`.

    Returns:
        The job's final record.
    """
    from rq import Queue, get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("run_job runs inside an RQ worker")
    timeout = int(job.timeout or 3600)
    store = RedisStore(job.connection, backend)
    enqueue = _rq_enqueuer(Queue(job.origin or QUEUE_NAME, connection=job.connection), backend, job_func, timeout)
    return _execute(store, enqueue, project_id, job_id, force, job_func, timeout + LOCK_MARGIN)


def _rq_job_lost(job: Any, connection: Any, *exc_info: Any) -> None:
    """RQ failure callback: a job that died outside our own handling (abandoned, crashed) is marked failed."""
    backend, project_id, job_id = job.args[:3]
    store = RedisStore(connection, backend)
    record = store.get(job_id)
    if record is not None and record.get("status") not in FINAL:
        store.release_lock(project_id, job_id)
        store.release_queued(project_id, job_id)
        value = exc_info[1] if len(exc_info) > 1 else None
        _finish(store, job_id, "failed", error=_error_text(value) if value else "the worker lost the job")


def _rq_job_stopped(job: Any, connection: Any) -> None:
    """RQ stopped callback (`rq` stop command): record it as failed."""
    _rq_job_lost(job, connection, RuntimeError, RuntimeError("stopped by an operator"), None)


# in-process mode


class _Threads:
    """A few daemon threads: a run in progress must not hold up interpreter exit."""

    def __init__(self, n: int):
        self._n = max(1, n)
        self._tasks: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._loop, name=f"labelloop-train-{i}", daemon=True)
                                 for i in range(self._n)]
                for t in self._threads:
                    t.start()
        self._tasks.put((fn, args))

    def _loop(self) -> None:
        while (task := self._tasks.get()) is not None:
            fn, args = task
            try:
                fn(*args)
            except Exception:
                logger.exception("training thread: unexpected error")

    def close(self) -> None:
        with self._lock:
            for _ in self._threads:
                self._tasks.put(None)
            self._threads = []


class TrainingQueue:
    """Training jobs of one backend: counted, coalesced, and one at a time per project.

    Args:
        backend: backend name.
        settings: uses redis_url (Redis + RQ when set, else threads here), retrain_every, train_timeout.
        job_func: dotted path of `f(backend, project_id, force) -> dict`, imported when a job runs.
        workers: threads in in-process mode.
    """

    def __init__(self, backend: str, settings: Settings, job_func: str = "backends.training.train_project",
                 workers: int = 2):
        self.backend = backend
        self.settings = settings
        self.job_func = job_func
        self.timeout = max(1, int(settings.train_timeout))
        self.ttl = self.timeout + LOCK_MARGIN
        self._threads: _Threads | None = None
        self.store: JobStore
        if settings.redis_url:
            import redis
            from rq import Queue

            self._redis = redis.Redis.from_url(settings.redis_url)
            self.store = RedisStore(self._redis, backend)
            self._enqueue = _rq_enqueuer(Queue(QUEUE_NAME, connection=self._redis), backend, job_func,
                                         self.timeout)
        else:
            self._redis = None
            self.store = MemoryStore(backend)
            self._threads = _Threads(workers)
            self._enqueue = self._enqueue_thread

    @property
    def mode(self) -> str:
        """"redis" or "memory"."""
        return "redis" if self._redis is not None else "memory"

    def _enqueue_thread(self, project_id: int, job_id: str, force: bool) -> None:
        assert self._threads is not None
        self._threads.submit(_execute, self.store, self._enqueue, project_id, job_id, force, self.job_func,
                             self.ttl)

    def annotation_event(self, project_id: int, action: str, every: int | None = None) -> dict:
        """Count an annotation webhook; every `retrain_every` of them, queue a run.

        Args:
            project_id: the project.
            action: Label Studio's webhook action (ANNOTATION_CREATED, ...), for the job's reason.
            every: the project's own retrain_every, instead of the backend's setting.

        Returns:
            {"status": "counted", "pending_annotations": n}, or `submit`'s answer when a run was due.
        """
        every = self.settings.retrain_every if every is None else every
        n, due = self.store.count_event(int(project_id), int(every))
        if not due:
            return {"status": "counted", "pending_annotations": n}
        return self.submit(project_id, f"{n} annotation events (last: {action})")

    def submit(self, project_id: int, reason: str, force: bool = False) -> dict:
        """Queue a training run, or join the one already queued.

        Args:
            project_id: the project.
            reason: why (recorded on the job).
            force: passed on to the job function (train even if nothing changed).

        Returns:
            {"status": "queued" | "coalesced", "job_id": ...}.
        """
        return _submit(self.store, self._enqueue, int(project_id), reason, force, self.ttl)

    def job(self, job_id: str) -> dict | None:
        """One job record, or None."""
        return self.store.get(job_id)

    def jobs(self, project_id: int | None = None, limit: int = 20) -> list[dict]:
        """Job records, newest first.

        Args:
            project_id: one project, or None for all of this backend's.
            limit: at most this many.

        Returns:
            Records: id, backend, project_id, reason, force, status, created, started, finished, result,
            error, follow_up, joined (reasons of later requests that joined the job while it was queued).
        """
        if limit <= 0:
            return []
        return self.store.records(None if project_id is None else int(project_id), limit)

    def last_failure(self, project_id: int) -> dict | None:
        """The newest failed job of a project, or None when none is kept or a later run has succeeded since."""
        for record in self.store.records(int(project_id), HISTORY):
            if record["status"] == "succeeded":
                return None
            if record["status"] == "failed":
                return record
        return None

    def outcome_counts(self) -> dict[str, int]:
        """Totals of finished jobs per final status (succeeded, failed, deferred) for this backend."""
        return {k: v for k, v in self.store.outcomes().items() if not k.startswith(RESULT_PREFIX)}

    def result_counts(self) -> dict[str, int]:
        """Totals of succeeded jobs per training result (published, rejected, skipped) for this backend."""
        return {k[len(RESULT_PREFIX):]: v for k, v in self.store.outcomes().items() if k.startswith(RESULT_PREFIX)}

    def wait(self, job_id: str, timeout: float = 30.0, poll: float = 0.02) -> dict:
        """Poll a job until it is final.

        Args:
            job_id: the job.
            timeout: seconds before TimeoutError.
            poll: seconds between looks.

        Returns:
            The final record.
        """
        deadline = time.monotonic() + timeout
        while True:
            record = self.store.get(job_id)
            if record is None:
                raise LookupError(f"no job {job_id}")
            if record["status"] in FINAL:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {record['status']} after {timeout}s")
            time.sleep(poll)

    def close(self) -> None:
        """Stop the threads (in-process mode) or close the Redis connection."""
        if self._threads is not None:
            self._threads.close()
        if self._redis is not None:
            self._redis.close()
