"""`TrainingQueue`: what the app calls to count annotations, queue training runs and list them.

With REDIS_URL the state lives in Redis and the runs happen in RQ workers (`python -m backends worker`, on any
host that shares MODEL_DIR); without it, in a few daemon threads of this process, with the state in memory.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..exceptions import LabelloopError
from .coordination import BEAT_TTL, FINAL, LOCK_MARGIN, RESULT_PREFIX, JobFunc, _execute, _finish, _submit, job_path
from .stores import HISTORY, JobStore, MemoryStore, RedisStore

if TYPE_CHECKING:  # only annotations: an RQ work-horse imports this package without the settings' dependencies
    from ..config import Settings

logger = logging.getLogger(__name__)

DEFAULT_JOB = "backends.training.train_project"


class QueueUnavailable(LabelloopError):
    """The job store (Redis) cannot be reached; predictions go on, training requests wait for it."""

    status = 503


class _Threads:
    """A few daemon threads: a run in progress must not hold up interpreter exit."""

    def __init__(self, n: int):
        self._n = max(1, n)
        self._tasks: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._stopping: list[threading.Thread] = []  # told to stop, maybe still in a run

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._closed:  # e.g. the follow-up of a run that ends after close: it must not start threads again
                raise RuntimeError("the training queue is closed")
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

    def close(self, wait: float = 0.0) -> list[tuple]:
        """Stop the threads once their current run ends; runs not started are dropped and returned (their
        arguments), so that nothing runs after close. Waits up to `wait` seconds for the threads to end."""
        dropped = []
        with self._lock:
            stops = len(self._threads)
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is None:  # a stop for a thread still in its run (an earlier close): it stays
                    stops += 1
                else:
                    dropped.append(task[1])
            for _ in range(stops):
                self._tasks.put(None)
            self._stopping += self._threads
            self._threads, self._closed = [], True
            threads = self._stopping = [t for t in self._stopping if t.is_alive()]
        deadline = time.monotonic() + wait
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._stopping = [t for t in self._stopping if t.is_alive()]
        return dropped

    @property
    def alive(self) -> int:
        """Threads still running (serving, or finishing a run after close)."""
        with self._lock:
            return sum(t.is_alive() for t in self._threads + self._stopping)


def _default_job(settings: Settings) -> JobFunc:
    from ..training import train_project

    return partial(train_project, settings=settings)


class TrainingQueue:
    """Training jobs of one backend: counted, coalesced, and one at a time per project.

    Args:
        backend: backend name.
        settings: uses redis_url (Redis + RQ when set, else threads here), retrain_every, train_timeout.
        job_func: `f(backend, project_id, force) -> dict`; in this process it is called as given (the app passes
            `training.trainer(adapter, settings)`, which reuses the serving adapter), in an RQ worker it is
            imported by its dotted path (see `coordination.job_path`). Default: `training.train_project` with
            `settings`. A dotted path string is imported when a job runs.
        workers: threads in in-process mode.
        beat_ttl: seconds without a heartbeat after which a running job counts as dead.
    """

    def __init__(self, backend: str, settings: Settings, job_func: JobFunc | str | None = None, workers: int = 2,
                 beat_ttl: int = BEAT_TTL):
        self.backend = backend
        self.settings = settings
        self.job_func: JobFunc | str = _default_job(settings) if job_func is None else job_func
        self.timeout = max(1, int(settings.train_timeout))
        self.ttl = self.timeout + LOCK_MARGIN
        self.beat_ttl = max(1, int(beat_ttl))
        self._threads: _Threads | None = None
        self.store: JobStore
        if settings.redis_url:
            import redis
            from rq import Queue

            from .worker import QUEUE_NAME, rq_enqueuer

            self._redis = redis.Redis.from_url(settings.redis_url)
            self._redis_errors: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError,
                                                                   redis.exceptions.TimeoutError)
            self.store = RedisStore(self._redis, backend)
            self._enqueue = rq_enqueuer(Queue(QUEUE_NAME, connection=self._redis), backend,
                                        job_path(self.job_func), self.timeout, self.beat_ttl)
        else:
            self._redis = None
            self._redis_errors = ()
            self.store = MemoryStore(backend)
            self._threads = _Threads(workers)
            self._enqueue = self._enqueue_thread

    @property
    def mode(self) -> str:
        """"redis" or "memory"."""
        return "redis" if self._redis is not None else "memory"

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn Redis being away into a 503 that says so (the app answers it as such)."""
        try:
            yield
        except self._redis_errors as e:
            raise QueueUnavailable(f"the training job store (Redis) is unreachable: {e}") from None

    def _enqueue_thread(self, project_id: int, job_id: str, force: bool) -> None:
        assert self._threads is not None
        self._threads.submit(_execute, self.store, self._enqueue, project_id, job_id, force, self.job_func,
                             self.ttl, self.beat_ttl)

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
        with self._reachable():
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
        with self._reachable():
            return _submit(self.store, self._enqueue, int(project_id), reason, force, self.ttl)

    def job(self, job_id: str) -> dict | None:
        """One job record, or None."""
        with self._reachable():
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
        with self._reachable():
            return self.store.records(None if project_id is None else int(project_id), limit)

    def last_failure(self, project_id: int) -> dict | None:
        """The newest failed job of a project, or None when none is kept or a later run has succeeded since."""
        with self._reachable():
            records = self.store.records(int(project_id), HISTORY)
        for record in records:
            if record["status"] == "succeeded":
                return None
            if record["status"] == "failed":
                return record
        return None

    def _outcomes(self) -> dict[str, int]:
        with self._reachable():
            return self.store.outcomes()

    def outcome_counts(self) -> dict[str, int]:
        """Totals of finished jobs per final status (succeeded, failed, deferred) for this backend."""
        return {k: v for k, v in self._outcomes().items() if not k.startswith(RESULT_PREFIX)}

    def result_counts(self) -> dict[str, int]:
        """Totals of succeeded jobs per training result (published, rejected, skipped) for this backend."""
        return {k[len(RESULT_PREFIX):]: v for k, v in self._outcomes().items() if k.startswith(RESULT_PREFIX)}

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

    def close(self, wait: float = 0.0) -> None:
        """Stop the threads (in-process mode; runs not started yet fail as "not run", and up to `wait` seconds
        are given to the running ones to end) or close the Redis connection."""
        if self._threads is not None:
            for _store, _enqueue, project_id, job_id, *_ in self._threads.close(wait):
                self.store.release_queued(project_id, job_id)
                _finish(self.store, job_id, "failed", error="not run: the training queue was closed")
        if self._redis is not None:
            self._redis.close()
