"""Where the training jobs' shared state lives: in this process (`MemoryStore`) or in Redis (`RedisStore`).

Both hold the same things behind `JobStore`: the per-project annotation counters, the "queued" slot and the run
lock, the follow-up flag, each running job's heartbeat, and the job records with their outcome totals.
"""
from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from typing import Any

KEY_PREFIX = "labelloop:"
HISTORY = 50  # job records kept per (backend, project)


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
    def lock_holder(self, project_id: int) -> str | None:
        """The id of the job holding the project's run lock, or None."""

    @abstractmethod
    def beat(self, job_id: str, ttl: int) -> None:
        """Mark a job alive for the next `ttl` seconds (its heartbeat renews this while it runs)."""

    @abstractmethod
    def alive(self, job_id: str) -> bool:
        """Whether the job's last heartbeat is younger than the ttl it gave."""

    @abstractmethod
    def end_beat(self, job_id: str) -> None:
        """Drop a job's heartbeat: it has ended and its record is final."""

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
    def finish(self, job_id: str, statuses: frozenset[str], outcomes: list[str], **fields: Any) -> bool:
        """End a job, atomically: while its record's status is one of `statuses`, set `fields` and add one to
        each of the `outcomes` totals (so a record seen final is already counted).

        A record already dropped from the history is only counted; one whose status is not in `statuses` is left
        alone: a job reported lost and its own late end cannot both finish it.

        Returns:
            Whether the record was changed.
        """

    @abstractmethod
    def get(self, job_id: str) -> dict | None:
        """One record, or None."""

    @abstractmethod
    def records(self, project_id: int | None, limit: int) -> list[dict]:
        """Records newest first, of one project or of all."""

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
        self._beats: dict[str, float] = {}
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

    def lock_holder(self, project_id: int) -> str | None:
        with self._lock:
            return self._holder(self._locks, project_id)

    def beat(self, job_id: str, ttl: int) -> None:
        with self._lock:
            self._beats[job_id] = time.monotonic() + ttl

    def alive(self, job_id: str) -> bool:
        with self._lock:
            return self._beats.get(job_id, 0.0) >= time.monotonic()

    def end_beat(self, job_id: str) -> None:
        with self._lock:
            self._beats.pop(job_id, None)

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

    def finish(self, job_id: str, statuses: frozenset[str], outcomes: list[str], **fields: Any) -> bool:
        with self._lock:
            record = self._records.get(job_id)
            if record is not None and record.get("status") not in statuses:
                return False
            self._outcomes.update(outcomes)
            if record is None:
                return False
            record.update(fields)
            return True

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
# ARGV: n, n statuses, m, m outcomes, then field/value pairs; KEYS: the record, the outcome totals.
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[n + 2])
local open = not status
for i = 1, n do
  if status == ARGV[1 + i] then open = true end
end
if not open then return 0 end
for j = 1, m do
  redis.call('HINCRBY', KEYS[2], ARGV[n + 2 + j], 1)
end
if not status then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, n + m + 3))
return 1
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
    of JSON-encoded fields), `labelloop:job:<id>:beat` (the heartbeat, expiring), `labelloop:<backend>:projects`
    and `labelloop:<backend>:outcomes`.
    """

    def __init__(self, connection: Any, backend: str):
        super().__init__(backend)
        self.redis = connection
        self._count = connection.register_script(_COUNT)
        self._claim = connection.register_script(_CLAIM)
        self._release = connection.register_script(_RELEASE)
        self._update = connection.register_script(_UPDATE)
        self._finish = connection.register_script(_FINISH)

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

    def lock_holder(self, project_id: int) -> str | None:
        holder = self.redis.get(self._key(project_id, "lock"))
        return None if holder is None else holder.decode()

    def beat(self, job_id: str, ttl: int) -> None:
        self.redis.set(f"{self._record_key(job_id)}:beat", 1, ex=int(ttl))

    def alive(self, job_id: str) -> bool:
        return bool(self.redis.exists(f"{self._record_key(job_id)}:beat"))

    def end_beat(self, job_id: str) -> None:
        self.redis.delete(f"{self._record_key(job_id)}:beat")

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

    def finish(self, job_id: str, statuses: frozenset[str], outcomes: list[str], **fields: Any) -> bool:
        wanted = [json.dumps(s) for s in sorted(statuses)]
        args = [len(wanted), *wanted, len(outcomes), *outcomes,
                *(part for k, v in fields.items() for part in (k, json.dumps(v)))]
        keys = [self._record_key(job_id), f"{KEY_PREFIX}{self.backend}:outcomes"]
        return bool(self._finish(keys=keys, args=args))

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

    def outcomes(self) -> dict[str, int]:
        raw = self.redis.hgetall(f"{KEY_PREFIX}{self.backend}:outcomes")
        return {k.decode(): int(v) for k, v in raw.items()}
