"""`retrain`: start training on the backend, wait for the new version, then re-rank. Safe from cron: a lock file
keeps two runs of one project apart, a timeout bounds the wait, and every failure exits non-zero."""
from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from .context import Context
from .errors import SyncError

FINAL = {"succeeded", "failed", "deferred"}
LOCKED_EXIT = 3
TIMEOUT_EXIT = 4


def default_lock(project_id: int) -> Path:
    return Path(tempfile.gettempdir()) / f"labelloop-sync-retrain-{project_id}.lock"


class Lock:
    """An exclusive, non-blocking flock: released when the process ends, even if it is killed."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> "Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SyncError(f"another retrain holds the lock {self.path}: not starting a second one",
                            code=LOCKED_EXIT) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _wait_job(ctx: Context, job_id: str | None, started_after: set[str], timeout: float,
              poll: float) -> dict:
    """The final record of our job; a deferred job (a run was in progress) is followed by its follow-up run."""
    backend = ctx.need_backend()
    deadline = time.monotonic() + timeout
    with tqdm(desc="training", unit="s", bar_format="{desc}: {elapsed} {postfix}") as bar:
        while True:
            jobs = backend.jobs(ctx.project_id)
            by_id = {j["id"]: j for j in jobs}
            job = by_id.get(job_id) if job_id else None
            if job is not None and job["status"] == "deferred":
                # the running job queues a follow-up that covers our request: wait for the newest job instead
                newer = [j for j in jobs if j["id"] not in started_after and j["id"] != job_id]
                job = newer[0] if newer else None
                job_id = job["id"] if job else job_id
            if job is not None:
                bar.set_postfix_str(f"job {job['id']} {job['status']}")
                if job["status"] in FINAL and job["status"] != "deferred":
                    return job
            if time.monotonic() > deadline:
                raise SyncError(f"training job {job_id} did not finish within {timeout:g}s (it stays queued or "
                                "running on the backend: see its /jobs; is an RQ worker running?)", code=TIMEOUT_EXIT)
            time.sleep(poll)
            bar.update(0)


def run(ctx: Context, timeout: float = 1800, lock_path: Path | None = None, poll: float = 1.0,
        rerank: Callable[[], dict] | None = None) -> dict[str, Any]:
    """The `retrain` command: returns the job, the old and new versions, and the rank result."""
    backend = ctx.need_backend()
    with Lock(lock_path or default_lock(ctx.project_id)):
        before = backend.served_version(ctx.project_id)
        known = {j["id"] for j in backend.jobs(ctx.project_id)}
        answer = backend.start_training(ctx.project_id, ctx.label_config)
        job = _wait_job(ctx, answer.get("job_id"), known, timeout, poll)
        if job["status"] == "failed":
            raise SyncError(f"training job {job['id']} failed: {(job.get('error') or 'no reason given').strip()}")
        result = job.get("result") or {}
        if result.get("status") != "published":
            raise SyncError(f"training job {job['id']} published no new version ({result.get('status')}): "
                            f"{result.get('reason') or 'see the backend log'}")
        after = backend.served_version(ctx.project_id)
        if after != result.get("model_version"):
            raise SyncError(f"the backend serves {after}, not the new {result.get('model_version')}")
        ranked = rerank() if rerank is not None else None
    return {"job": job["id"], "before": before, "model_version": after, "metrics": result.get("metrics"),
            "rank": ranked}
