from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest

from backends.config import Settings
from backends.jobs import HISTORY, QUEUE_NAME, TrainingQueue, import_func

ROOT = Path(__file__).resolve().parents[2]
GATE_TIMEOUT = 10.0
# an upper bound, not a speed check: a real RQ worker starting on a busy 2-core machine can take several seconds
WAIT = 60.0


# Job functions, imported by dotted path: in this process (threads) or in an RQ worker's work horse.
# They talk to the test through files in $LABELLOOP_TEST_DIR, which works across processes.


def _dir() -> Path:
    return Path(os.environ["LABELLOOP_TEST_DIR"])


def _log(line: str) -> None:
    # One O_APPEND write per line: lines from several processes never interleave.
    fd = os.open(_dir() / "calls.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def gated_job(backend: str, project_id: int, force: bool) -> dict:
    """Runs until the test creates the "gate" file; notices if another run of the project is active."""
    active = _dir() / f"active-{project_id}"
    try:
        os.close(os.open(active, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        _log(f"overlap {project_id}")
        raise RuntimeError("two runs of one project at once")
    _log(f"start {project_id} force={force}")
    try:
        deadline = time.monotonic() + GATE_TIMEOUT
        while not (_dir() / "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"status": "published", "model_version": f"{backend}-v1", "metrics": {"accuracy": 0.9}}
    finally:
        _log(f"end {project_id}")
        active.unlink()


def failing_job(backend: str, project_id: int, force: bool) -> dict:
    _log(f"start {project_id} force={force}")
    raise RuntimeError("boom: bad data in task 3")


def flaky_job(backend: str, project_id: int, force: bool) -> dict:
    """Fails while the test's "broken" file exists, then publishes."""
    _log(f"start {project_id} force={force}")
    if (_dir() / "broken").exists():
        raise RuntimeError("boom: the media server is down")
    return {"status": "rejected", "model_version": f"{backend}-v1", "metrics": {}}


def _calls(d: Path, kind: str = "start", project_id: int | None = None) -> list[str]:
    path = d / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [ln for ln in lines if ln.split()[0] == kind and (project_id is None or ln.split()[1] == str(project_id))]


def _wait_for(cond: Callable[[], object], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Harness:
    """Builds TrainingQueues in one mode; in Redis mode also runs real `rq worker` processes."""

    def __init__(self, mode: str, workdir: Path, redis_url: str):
        self.mode = mode
        self.dir = workdir
        self.redis_url = redis_url
        self.queues: list[TrainingQueue] = []
        self.procs: list[subprocess.Popen] = []

    def queue(self, func: str = "gated_job", retrain_every: int = 0, workers: int = 2,
              train_timeout: int = 30) -> TrainingQueue:
        settings = Settings(redis_url=self.redis_url, retrain_every=retrain_every, train_timeout=train_timeout)
        q = TrainingQueue("text_cls", settings, job_func=f"{__name__}.{func}", workers=workers)
        assert q.mode == self.mode
        self.queues.append(q)
        return q

    def start_workers(self, n: int = 2) -> None:
        """Start `n` RQ workers (Redis mode); in-process mode has its threads already."""
        if self.mode != "redis":
            return
        import redis
        from rq import Worker

        env = {**os.environ, "LABELLOOP_TEST_DIR": str(self.dir),
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        rq = Path(sys.executable).with_name("rq")
        for _ in range(n):
            log = open(self.dir / f"worker-{len(self.procs)}.log", "wb")
            self.procs.append(subprocess.Popen([str(rq), "worker", "--url", self.redis_url, QUEUE_NAME],
                                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        conn = redis.Redis.from_url(self.redis_url)
        try:
            _wait_for(lambda: len(Worker.all(connection=conn)) >= len(self.procs), 20, "rq workers")
        finally:
            conn.close()

    def open_gate(self) -> None:
        (self.dir / "gate").touch()

    def close(self) -> None:
        self.open_gate()  # lets any gated run end, so workers stop at once
        for q in self.queues:
            # Waits for in-process runs to end: one left running would log into the next test's directory.
            q.close(wait=WAIT)
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(params=["memory", "redis"])
def harness(request, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELLOOP_TEST_DIR", str(tmp_path))
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    h = Harness(request.param, tmp_path, url)
    yield h
    h.close()


@pytest.fixture
def rq_harness(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LABELLOOP_TEST_DIR", str(tmp_path))
    h = Harness("redis", tmp_path, redis_url)
    yield h
    h.close()


def test_one_run_at_a_time_per_project(harness):
    q = harness.queue()
    harness.start_workers(2)
    first = q.submit(1, "first")
    assert first["status"] == "queued"
    _wait_for(lambda: _calls(harness.dir, project_id=1), what="first run")
    assert q.job(first["job_id"])["status"] == "running"

    # A second job for the same project is picked up by the idle worker but must not run...
    second = q.submit(1, "second")
    assert second["status"] == "queued" and second["job_id"] != first["job_id"]
    assert q.wait(second["job_id"], WAIT)["status"] == "deferred"
    # ...while another project runs alongside: the lock is per project, not global.
    other = q.submit(2, "other project")
    _wait_for(lambda: _calls(harness.dir, project_id=2), what="project 2 run")
    assert len(_calls(harness.dir, project_id=1)) == 1

    harness.open_gate()
    done = q.wait(first["job_id"], WAIT)
    assert done["status"] == "succeeded"
    assert done["result"] == {"status": "published", "model_version": "text_cls-v1", "metrics": {"accuracy": 0.9}}
    assert done["started"] and done["finished"] and done["error"] is None
    # The deferred job left a flag: exactly one follow-up runs after the first.
    assert done["follow_up"]
    assert q.wait(done["follow_up"], WAIT)["status"] == "succeeded"
    assert q.wait(other["job_id"], WAIT)["status"] == "succeeded"
    assert len(_calls(harness.dir, project_id=1)) == 2
    assert _calls(harness.dir, "overlap") == []
    assert q.outcome_counts() == {"succeeded": 3, "deferred": 1}
    assert q.result_counts() == {"published": 3}


def test_burst_during_a_run_gives_exactly_one_follow_up(harness):
    q = harness.queue(retrain_every=1)
    harness.start_workers(2)
    first = q.submit(1, "first")
    _wait_for(lambda: _calls(harness.dir, project_id=1), what="first run")

    answers = [q.annotation_event(1, "ANNOTATION_CREATED") for _ in range(20)]
    assert {a["status"] for a in answers} <= {"queued", "coalesced"}
    burst_jobs = {a["job_id"] for a in answers}
    # Let the burst settle: with the lock held, each job it queued ends deferred.
    for job_id in burst_jobs:
        assert q.wait(job_id, WAIT)["status"] == "deferred"
    assert len(_calls(harness.dir, project_id=1)) == 1

    harness.open_gate()
    done = q.wait(first["job_id"], WAIT)
    assert q.wait(done["follow_up"], WAIT)["status"] == "succeeded"
    time.sleep(0.3)  # room for a wrongly queued extra run to show up
    assert len(_calls(harness.dir, project_id=1)) == 2
    assert _calls(harness.dir, "overlap") == []
    statuses = [j["status"] for j in q.jobs(1, limit=50)]
    assert statuses.count("succeeded") == 2
    assert statuses.count("deferred") == len(burst_jobs)
    assert all(s in {"succeeded", "deferred"} for s in statuses)


def test_failing_job_is_recorded_and_counted(harness):
    q = harness.queue("failing_job")
    harness.start_workers(1)
    job = q.submit(5, "webhook")
    record = q.wait(job["job_id"], WAIT)
    assert record["status"] == "failed"
    assert record["error"] == "boom: bad data in task 3"
    assert "Traceback" not in record["error"]
    assert record["result"] is None
    assert q.outcome_counts() == {"failed": 1}
    assert q.last_failure(5)["id"] == job["job_id"]
    assert q.last_failure(6) is None
    # The lock was released: the next job runs (and fails) instead of being deferred.
    again = q.submit(5, "retry", force=True)
    assert q.wait(again["job_id"], WAIT)["status"] == "failed"
    assert _calls(harness.dir, project_id=5) == ["start 5 force=False", "start 5 force=True"]
    assert q.last_failure(5)["id"] == again["job_id"]
    assert q.outcome_counts() == {"failed": 2}
    assert q.result_counts() == {}


def test_a_later_success_clears_the_reported_failure(harness):
    q = harness.queue("flaky_job")
    harness.start_workers(1)
    (harness.dir / "broken").touch()
    failed = q.wait(q.submit(5, "first")["job_id"], WAIT)
    assert failed["status"] == "failed" and q.last_failure(5)["id"] == failed["id"]
    (harness.dir / "broken").unlink()
    assert q.wait(q.submit(5, "second")["job_id"], WAIT)["status"] == "succeeded"
    assert q.last_failure(5) is None
    assert q.outcome_counts() == {"failed": 1, "succeeded": 1}
    assert q.result_counts() == {"rejected": 1}


def test_annotation_events_trigger_every_n(harness):
    q = harness.queue(retrain_every=3)
    harness.start_workers(1)
    harness.open_gate()
    assert q.annotation_event(1, "ANNOTATION_CREATED") == {"status": "counted", "pending_annotations": 1}
    assert q.annotation_event(1, "ANNOTATION_UPDATED") == {"status": "counted", "pending_annotations": 2}
    assert q.annotation_event(2, "ANNOTATION_CREATED")["pending_annotations"] == 1  # counted per project
    due = q.annotation_event(1, "ANNOTATION_CREATED")
    assert due["status"] == "queued"
    assert q.job(due["job_id"])["reason"] == "3 annotation events (last: ANNOTATION_CREATED)"
    assert q.annotation_event(1, "ANNOTATION_CREATED") == {"status": "counted", "pending_annotations": 1}
    assert q.wait(due["job_id"], WAIT)["status"] == "succeeded"
    assert len(_calls(harness.dir, project_id=1)) == 1

    off = harness.queue(retrain_every=0)
    answers = [off.annotation_event(3, "ANNOTATION_CREATED") for _ in range(5)]
    assert all(a["status"] == "counted" for a in answers)
    assert off.jobs(3) == []

    if harness.mode == "redis":
        # Web processes share the count through Redis.
        other = harness.queue(retrain_every=3)
        assert other.annotation_event(1, "ANNOTATION_CREATED") == {"status": "counted", "pending_annotations": 2}


def test_queued_job_absorbs_later_requests(harness):
    q = harness.queue(workers=1)
    if harness.mode == "memory":
        # Keep the only thread busy with another project so project 2's job stays queued.
        q.submit(1, "blocker")
        _wait_for(lambda: _calls(harness.dir, project_id=1), what="blocker run")
    queued = q.submit(2, "first")
    assert queued["status"] == "queued"
    for i in range(5):
        assert q.submit(2, f"again {i}", force=(i == 4)) == {"status": "coalesced", "job_id": queued["job_id"]}
    assert q.submit(3, "other project")["status"] == "queued"

    harness.open_gate()
    harness.start_workers(1)
    assert q.wait(queued["job_id"], WAIT)["status"] == "succeeded"
    # One run, and the force asked for while it waited reached it.
    assert _calls(harness.dir, project_id=2) == ["start 2 force=True"]
    assert len([j for j in q.jobs(2) if j["reason"].startswith("again")]) == 0
    # The requests that joined are listed on the job they joined.
    assert q.job(queued["job_id"])["joined"] == [f"again {i}" for i in range(5)]
    # Once it has started, a new request queues a new job.
    assert q.submit(2, "later")["status"] == "queued"


def test_closing_drops_runs_not_started(tmp_path, monkeypatch):
    # A run queued in a thread must not start after close (it would run against whatever the process does next).
    monkeypatch.setenv("LABELLOOP_TEST_DIR", str(tmp_path))
    q = TrainingQueue("text_cls", Settings(redis_url=""), job_func=f"{__name__}.gated_job", workers=1)
    q.submit(1, "running")
    _wait_for(lambda: _calls(tmp_path, project_id=1), what="first run")
    waiting = q.submit(2, "waiting")
    q.close(wait=0.1)  # the running one holds its thread until the gate opens
    (tmp_path / "gate").touch()
    q.close(wait=WAIT)
    assert q._threads.alive == 0  # the second close kept the first one's stop for the thread still in its run
    assert _calls(tmp_path, "end", 1) == ["end 1"]
    assert _calls(tmp_path, project_id=2) == []
    record = q.job(waiting["job_id"])
    assert record["status"] == "failed" and "closed" in record["error"]
    with pytest.raises(RuntimeError, match="closed"):
        q.submit(3, "after close")


def test_job_listing_is_capped_and_newest_first(harness):
    q = harness.queue()
    for i in range(HISTORY + 5):
        q.store.save({"id": f"job-{i}", "backend": "text_cls", "project_id": 1, "reason": str(i), "force": False,
                      "status": "succeeded", "created": f"2024-01-01T00:00:{i:02d}.000000+00:00",
                      "started": None, "finished": None, "result": {}, "error": None, "follow_up": None})
    q.store.save({"id": "job-p2", "backend": "text_cls", "project_id": 2, "reason": "x", "force": False,
                  "status": "failed", "created": "2024-01-01T00:00:30.500000+00:00", "started": None,
                  "finished": None, "result": None, "error": "e", "follow_up": None})
    listed = q.jobs(1, limit=100)
    assert len(listed) == HISTORY
    assert listed[0]["id"] == f"job-{HISTORY + 4}" and listed[-1]["id"] == "job-5"
    assert q.job("job-0") is None  # dropped with its index entry
    assert [j["id"] for j in q.jobs(limit=3)] == ["job-54", "job-53", "job-52"]
    assert [j["id"] for j in q.jobs(limit=30)][23:25] == ["job-31", "job-p2"]
    assert q.jobs(1, limit=0) == []
    assert q.last_failure(2)["id"] == "job-p2"


def test_wait_and_import_errors(harness):
    q = harness.queue("no_such_function")
    harness.start_workers(1)
    record = q.wait(q.submit(1, "x")["job_id"], WAIT)
    assert record["status"] == "failed" and "no_such_function" in record["error"]
    with pytest.raises(LookupError):
        q.wait("nope", 1)
    blocked = harness.queue()
    job = blocked.submit(2, "gated")
    with pytest.raises(TimeoutError):
        blocked.wait(job["job_id"], 0.2)
    with pytest.raises(ValueError):
        import_func("nodots")


def test_a_run_covers_earlier_follow_up_requests(harness):
    # A flag left from before (its holder crashed, say) is satisfied by the next run, not by one more after it.
    q = harness.queue()
    harness.start_workers(1)
    harness.open_gate()
    q.store.set_pending(1, 60)
    done = q.wait(q.submit(1, "webhook")["job_id"], WAIT)
    assert done["status"] == "succeeded" and done["follow_up"] is None
    assert len(_calls(harness.dir, project_id=1)) == 1


def test_rq_job_timeout_fails_the_job_and_frees_the_project(rq_harness):
    # Only RQ enforces TRAIN_TIMEOUT; in-process runs are not interrupted.
    harness = rq_harness
    q = harness.queue(train_timeout=1)
    harness.start_workers(1)
    record = q.wait(q.submit(1, "never ends")["job_id"], WAIT)  # the gate stays shut
    assert record["status"] == "failed" and "timeout" in record["error"]
    harness.open_gate()
    # the project is free again (a queue with time enough: 1 s may not even cover starting a job on a busy machine)
    roomy = harness.queue(train_timeout=60)
    assert roomy.wait(roomy.submit(1, "next")["job_id"], WAIT)["status"] == "succeeded"


def test_rq_failure_callback_marks_a_lost_job_failed(rq_harness):
    import redis

    from backends.jobs.worker import _rq_job_lost

    q = rq_harness.queue()  # no worker: the job stays queued
    job_id = q.submit(1, "webhook")["job_id"]
    assert q.store.acquire_lock(1, job_id, 60)
    lost = SimpleNamespace(id=job_id, args=("text_cls", 1, job_id, False, "x.y"))
    conn = redis.Redis.from_url(rq_harness.redis_url)
    try:
        _rq_job_lost(lost, conn, RuntimeError, RuntimeError("work-horse killed"), None)
    finally:
        conn.close()
    record = q.job(job_id)
    assert (record["status"], record["error"]) == ("failed", "work-horse killed")
    assert q.store.acquire_lock(1, "next", 60)  # the project is free again
    assert q.submit(1, "again")["status"] == "queued"
