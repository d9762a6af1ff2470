"""RQ glue: queueing a job in Redis, running it in a work-horse, and a worker that survives its faults.

Only here does the job function travel as a dotted path (an RQ job is pickled into Redis and run by another
process). `TrainingWorker` reports a work-horse that died (the out-of-memory killer's SIGKILL) at once, and
`run_worker` waits for Redis and reconnects instead of exiting when Redis goes away.

    python -m backends worker          # = run_worker(REDIS_URL)
    rq worker --url "$REDIS_URL" -w backends.jobs.worker.TrainingWorker labelloop-train
"""
from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Callback, Queue, Worker, get_current_job
from rq.exceptions import AbandonedJobError

from .coordination import BEAT_TTL, LOCK_MARGIN, Enqueue, _error_text, _execute, _lost
from .stores import RedisStore

logger = logging.getLogger(__name__)

QUEUE_NAME = "labelloop-train"
RESULT_TTL = 24 * 3600  # how long RQ keeps its own copy of a finished job
DEFAULT_TIMEOUT = 3600
RECONNECT_MAX_S = 30.0  # the longest wait between two tries to reach Redis again


def rq_enqueuer(rq_queue: Queue, backend: str, job_func: str, timeout: int, beat_ttl: int = BEAT_TTL) -> Enqueue:
    """An `Enqueue` that puts a job into an RQ queue, to run `run_job` in a worker.

    Args:
        rq_queue: the queue (and with it the Redis connection).
        backend: backend name, passed on to the job function.
        job_func: dotted path of `f(backend, project_id, force) -> dict`.
        timeout: RQ's job timeout in seconds.
        beat_ttl: seconds without a heartbeat after which the job counts as dead.
    """

    def enqueue(project_id: int, job_id: str, force: bool) -> None:
        rq_queue.enqueue(run_job, args=(backend, project_id, job_id, force, job_func, beat_ttl), job_id=job_id,
                         job_timeout=timeout, result_ttl=RESULT_TTL, failure_ttl=RESULT_TTL,
                         description=f"train {backend} project {project_id}",
                         on_failure=Callback(_rq_job_lost), on_stopped=Callback(_rq_job_stopped))

    return enqueue


def run_job(backend: str, project_id: int, job_id: str, force: bool, job_func: str,
            beat_ttl: int = BEAT_TTL) -> dict:
    """The RQ entry point: coordinate and run one training job inside an RQ worker.

    Args:
        backend: backend name.
        project_id: Label Studio project id.
        job_id: the job's record id (also its RQ job id).
        force: passed on to `job_func`.
        job_func: dotted path of `f(backend, project_id, force) -> dict`.
        beat_ttl: seconds without a heartbeat after which the job counts as dead.

    Returns:
        The job's final record.
    """
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_job runs inside an RQ worker")
    store, enqueue, ttl = _context(job, job.connection)
    return _execute(store, enqueue, project_id, job_id, force, job_func, ttl, beat_ttl)


def _context(job: Any, connection: Any) -> tuple[RedisStore, Enqueue, int]:
    """The store, the enqueuer for follow-ups and the lock ttl of an RQ job of ours (from its arguments)."""
    backend, job_func = job.args[0], job.args[4]
    beat_ttl = job.args[5] if len(job.args) > 5 else BEAT_TTL
    timeout = int(getattr(job, "timeout", None) or DEFAULT_TIMEOUT)
    rq_queue = Queue(getattr(job, "origin", None) or QUEUE_NAME, connection=connection)
    return RedisStore(connection, backend), rq_enqueuer(rq_queue, backend, job_func, timeout, beat_ttl), \
        timeout + LOCK_MARGIN


def _job_lost(job: Any, connection: Any, reason: str) -> None:
    """Mark an RQ job of ours failed with `reason`, free its project and queue the run it held up."""
    store, enqueue, ttl = _context(job, connection)
    _lost(store, enqueue, int(job.args[1]), job.args[2], reason, ttl)


def _rq_job_lost(job: Any, connection: Any, *exc_info: Any) -> None:
    """RQ failure callback: a job that died outside our own handling (abandoned, crashed) is marked failed."""
    value = exc_info[1] if len(exc_info) > 1 else None
    if isinstance(value, AbandonedJobError):  # found by another worker's clean-up of RQ's started registry
        reason = "the worker running it died (RQ found the job abandoned)"
    else:
        reason = _error_text(value) if value else "the worker lost the job"
    _job_lost(job, connection, reason)


def _rq_job_stopped(job: Any, connection: Any) -> None:
    """RQ stopped callback (`rq` stop command): record it as failed."""
    _job_lost(job, connection, "stopped by an operator")


def horse_death(ret_val: int | None) -> str:
    """Why a work-horse ended, from its wait status, in words for the job record."""
    if ret_val is not None and os.WIFSIGNALED(ret_val):
        sig = os.WTERMSIG(ret_val)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "an unknown signal"
        hint = ", as the out-of-memory killer does" if sig == signal.SIGKILL else ""
        return f"the work-horse process running it was killed by {name} (signal {sig}{hint})"
    if ret_val is not None and os.WIFEXITED(ret_val):
        return f"the work-horse process running it exited with status {os.WEXITSTATUS(ret_val)}"
    return f"the work-horse process running it ended unexpectedly (wait status {ret_val})"


class TrainingWorker(Worker):
    """An RQ worker that marks the job of a work-horse that died as failed at once, with the reason.

    RQ itself only moves such a job to its failed registry: it calls no failure callback for it, so without
    this our record would stay "running" until the job's heartbeat is found missing.
    """

    stop_requested = False

    def handle_work_horse_killed(self, job: Any, retpid: int, ret_val: int, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if getattr(job, "func_name", None) != f"{__name__}.run_job":
            return  # someone else's job on a queue we also serve
        try:
            _job_lost(job, self.connection, horse_death(ret_val))
        except Exception:
            logger.exception("could not record the death of job %s", job.id)

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_requested = True  # SIGTERM/SIGINT: `run_worker` must not start again
        super().request_stop(signum, frame)


def _wait_for_redis(connection: Redis) -> None:
    """Return once Redis answers, trying again with a growing pause (logged once per outage)."""
    pause, reported = 1.0, False
    while True:
        try:
            connection.ping()
            if reported:
                logger.info("Redis is back")
            return
        except (RedisConnectionError, RedisTimeoutError) as e:
            if not reported:
                logger.warning("Redis is unreachable (%s); waiting for it", e)
                reported = True
        time.sleep(pause)
        pause = min(pause * 2, RECONNECT_MAX_S)


def run_worker(redis_url: str, burst: bool = False) -> None:
    """Work on the training queue until stopped; when Redis goes away, wait for it and carry on.

    Args:
        redis_url: where the queue lives.
        burst: return once the queue is empty.
    """
    connection = Redis.from_url(redis_url)
    while True:
        _wait_for_redis(connection)
        worker = TrainingWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
        try:
            worker.work(burst=burst)
        except (RedisConnectionError, RedisTimeoutError) as e:
            # RQ gives up on a connection error outside its dequeue loop (and on the way out, registering
            # its death): start a fresh worker once Redis answers again.
            logger.warning("worker %s lost Redis (%s); starting again when it is back", worker.name, e)
            continue
        if burst or worker.stop_requested:
            return
        # RQ's loop ended on an error it does not retry (a connection lost mid-job): start again.
        logger.warning("worker %s stopped unexpectedly; starting again", worker.name)
        time.sleep(1)
