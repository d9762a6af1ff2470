"""Fault drills for training jobs, with real redis-server and real RQ workers: a work-horse killed mid-run (what
the out-of-memory killer does), a lock holder that died without anyone noticing, Redis stopped and restarted."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from backends.config import Settings
from backends.jobs import QUEUE_NAME, MemoryStore, QueueUnavailable, RedisStore, TrainingQueue
from backends.jobs.coordination import _execute
from ops.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0


# Job functions, imported by dotted path in the RQ work-horses; they talk to the test through files.


def _dir() -> Path:
    return Path(os.environ["LABELLOOP_TEST_DIR"])


def hanging_job(backend: str, project_id: int, force: bool) -> dict:
    """Writes "start <project> <pid>"; while the file "hang" exists it never ends (the test kills it)."""
    fd = os.open(_dir() / "calls.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"start {project_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    while (_dir() / "hang").exists():
        time.sleep(0.05)
    return {"status": "published", "model_version": f"{backend}-v1"}


def _starts(d: Path) -> list[tuple[int, int]]:
    path = d / "calls.log"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []  # a line is complete with its newline
    return [(int(p), int(pid)) for _, p, pid in (ln.split() for ln in lines)]


def _wait_for(cond: Callable[[], object], timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def _env(workdir: Path, redis_url: str) -> dict[str, str]:
    return {**os.environ, "LABELLOOP_TEST_DIR": str(workdir), "REDIS_URL": redis_url,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


class Workers:
    """Worker processes: ours (`python -m backends worker`) or RQ's plain `rq worker`."""

    def __init__(self, workdir: Path, redis_url: str):
        self.dir, self.redis_url, self.procs = workdir, redis_url, []

    def start(self, n: int = 1, plain: bool = False) -> None:
        if plain:
            cmd = [str(Path(sys.executable).with_name("rq")), "worker", "--url", self.redis_url, QUEUE_NAME]
        else:
            cmd = [sys.executable, "-m", "backends", "worker"]
        for _ in range(n):
            with open(self.dir / f"worker-{len(self.procs)}.log", "wb") as log:
                self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(self.dir, self.redis_url), stdout=log,
                                                   stderr=subprocess.STDOUT))

    def wait_registered(self) -> None:
        import redis
        from rq import Worker

        conn = redis.Redis.from_url(self.redis_url)
        try:
            _wait_for(lambda: len(Worker.all(connection=conn)) >= len(self.procs), what="workers to register")
        finally:
            conn.close()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("worker-*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LABELLOOP_TEST_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def workers(workdir, redis_url):
    w = Workers(workdir, redis_url)
    yield w
    (workdir / "hang").unlink(missing_ok=True)
    w.stop()


def _queue(redis_url: str, beat_ttl: int = 30) -> TrainingQueue:
    return TrainingQueue("text_cls", Settings(redis_url=redis_url, train_timeout=120),
                         job_func=f"{__name__}.hanging_job", beat_ttl=beat_ttl)


def test_killed_work_horse_fails_its_job_and_the_deferred_run_happens(workers, workdir, redis_url):
    q = _queue(redis_url)
    workers.start(2)
    workers.wait_registered()
    (workdir / "hang").touch()
    first = q.submit(1, "first")["job_id"]
    _, pid = _wait_for(lambda: _starts(workdir), what="the first run")[0]
    # The other worker takes the next request and defers it: the project's run is in progress.
    second = q.submit(1, "second")["job_id"]
    assert q.wait(second, WAIT)["status"] == "deferred"

    (workdir / "hang").unlink()
    os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does to the work-horse
    record = q.wait(first, WAIT)
    assert record["status"] == "failed", record
    assert "killed by SIGKILL" in record["error"] and "out-of-memory" in record["error"], record["error"]
    # The deferred request was not lost: its follow-up runs now, and the project is free afterwards.
    assert record["follow_up"], record
    assert q.wait(record["follow_up"], WAIT)["status"] == "succeeded"
    assert [p for p, _ in _starts(workdir)] == [1, 1]
    assert q.store.lock_holder(1) is None
    assert q.wait(q.submit(1, "later")["job_id"], WAIT)["status"] == "succeeded"
    assert q.outcome_counts() == {"failed": 1, "deferred": 1, "succeeded": 2}
    assert q.last_failure(1) is None
    assert all(p.poll() is None for p in workers.procs), workers.log()


def test_a_dead_lock_holder_is_found_by_the_next_run(workers, workdir, redis_url):
    # Plain `rq worker` tells nobody that a work-horse died: the record stays "running" and its lock held. The
    # next run of the project sees that the holder stopped beating, marks it failed and runs.
    q = _queue(redis_url, beat_ttl=2)
    workers.start(1, plain=True)
    workers.wait_registered()
    (workdir / "hang").touch()
    first = q.submit(1, "first")["job_id"]
    _, pid = _wait_for(lambda: _starts(workdir), what="the first run")[0]
    (workdir / "hang").unlink()
    os.kill(pid, signal.SIGKILL)
    time.sleep(3)  # longer than beat_ttl
    assert q.job(first)["status"] == "running" and q.store.lock_holder(1) == first
    assert not q.store.alive(first)

    done = q.wait(q.submit(1, "next")["job_id"], WAIT)
    assert done["status"] == "succeeded", done
    lost = q.job(first)
    assert lost["status"] == "failed" and "no heartbeat for 2 s" in lost["error"], lost
    assert q.outcome_counts() == {"failed": 1, "succeeded": 1}


def test_a_live_holder_keeps_its_lock_while_it_beats(tmp_path, monkeypatch):
    # The heartbeat outlives beat_ttl many times over: a long run is never taken for a dead one.
    monkeypatch.setenv("LABELLOOP_TEST_DIR", str(tmp_path))
    (tmp_path / "hang").touch()
    q = TrainingQueue("text_cls", Settings(train_timeout=60), job_func=f"{__name__}.hanging_job", beat_ttl=1)
    try:
        first = q.submit(1, "first")["job_id"]
        _wait_for(lambda: _starts(tmp_path), what="the first run")
        time.sleep(2.5)
        assert q.store.alive(first)
        assert q.wait(q.submit(1, "second")["job_id"], WAIT)["status"] == "deferred"
        (tmp_path / "hang").unlink()
        done = q.wait(first, WAIT)
        assert done["status"] == "succeeded" and q.wait(done["follow_up"], WAIT)["status"] == "succeeded"
        assert not q.store.alive(first)  # the mark is dropped when the job ends
    finally:
        q.close()


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryStore("text_cls")
        return
    import redis

    conn = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisStore(conn, "text_cls")
    conn.close()


def test_a_late_end_of_a_job_reported_lost_is_not_counted_twice(store):
    store.save({"id": "a", "backend": "text_cls", "project_id": 1, "status": "queued", "created": "1"})
    store.acquire_lock(1, "a", 60)  # held by "a", which never beats: dead

    def job(backend: str, project_id: int, force: bool) -> dict:
        return {"status": "published"}

    store.save({"id": "b", "backend": "text_cls", "project_id": 1, "status": "queued", "created": "2"})
    assert _execute(store, lambda *a: None, 1, "b", False, job, 60, 5)["status"] == "succeeded"
    assert store.get("a")["status"] == "failed" and "no heartbeat" in store.get("a")["error"]
    assert store.outcomes() == {"failed": 1, "succeeded": 1, "result:published": 1}
    # "a" was only frozen and comes back: its end must not overwrite the record nor count again.
    assert store.finish("a", frozenset({"queued", "running"}), ["succeeded"], status="succeeded") is False
    assert store.get("a")["status"] == "failed"
    assert store.outcomes() == {"failed": 1, "succeeded": 1, "result:published": 1}


class RestartableRedis:
    """A redis-server on a fixed port that can be stopped and started again (empty each time, like a crash)."""

    def __init__(self, workdir: Path):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            pytest.skip("redis-server is not installed")
        self.port, self.dir, self.proc = free_port(), workdir / "redis", None
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 15, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_worker_and_queue_recover_when_redis_restarts(workdir):
    server = RestartableRedis(workdir)
    w = Workers(workdir, server.url)
    q = _queue(server.url)
    try:
        w.start(1)  # before Redis is up: it waits for it
        time.sleep(2)
        assert w.procs[0].poll() is None, w.log()
        server.start()
        assert q.wait(q.submit(1, "first")["job_id"], WAIT)["status"] == "succeeded"

        server.stop()
        # The backend answers 503 with the reason instead of a connection error...
        with pytest.raises(QueueUnavailable, match="Redis"):
            q.submit(1, "while Redis is away")
        with pytest.raises(QueueUnavailable) as err:
            q.jobs(1)
        assert err.value.status == 503
        time.sleep(4)  # ...and the worker stays, waiting for Redis
        assert w.procs[0].poll() is None, w.log()

        server.start()  # empty: a restart without persistence
        record = q.wait(q.submit(1, "after the restart")["job_id"], 90)
        assert record["status"] == "succeeded", (record, w.log())
        assert [p for p, _ in _starts(workdir)] == [1, 1]
        assert w.procs[0].poll() is None, w.log()
        # A stop request still stops it (it is not taken for a lost connection).
        w.procs[0].terminate()
        assert w.procs[0].wait(15) == 0, w.log()
    finally:
        q.close()
        w.stop()
        server.stop()


def test_an_abandoned_job_reported_by_rq_fails_and_queues_the_deferred_run(workdir, redis_url):
    # A worker that died whole (not only its work-horse) leaves its job in RQ's started registry; another
    # worker's clean-up calls the job's failure callback with AbandonedJobError.
    import redis
    from rq import Queue
    from rq.exceptions import AbandonedJobError

    from backends.jobs.worker import _rq_job_lost

    q = _queue(redis_url)  # no worker: jobs stay queued
    job_id = q.submit(1, "webhook")["job_id"]
    q.store.update(job_id, status="running")
    assert q.store.acquire_lock(1, job_id, 60)
    q.store.set_pending(1, 60)  # a request deferred while it ran
    conn = redis.Redis.from_url(redis_url)
    try:
        rq_job = Queue(QUEUE_NAME, connection=conn).fetch_job(job_id)
        _rq_job_lost(rq_job, conn, AbandonedJobError, AbandonedJobError(), None)
        record = q.job(job_id)
        assert record["status"] == "failed" and "worker running it died" in record["error"], record
        assert record["follow_up"] and Queue(QUEUE_NAME, connection=conn).get_job_ids() == [job_id,
                                                                                           record["follow_up"]]
        assert q.store.lock_holder(1) is None
    finally:
        conn.close()
        q.close()
