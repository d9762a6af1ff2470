"""Training jobs: coalesced, one run at a time per (backend, project), and lost runs detected.

Label Studio sends a webhook per annotation; training on each one would queue hundreds of runs. So:

* a job that is queued but not started absorbs later requests for the same project ("coalesced");
* a job that starts while another runs for the same project takes no turn: it sets a "follow-up pending"
  flag and ends as "deferred";
* the running job, when done, releases its lock and then takes the flag (get-and-delete): if it was set,
  it queues exactly one follow-up, which trains on everything annotated meanwhile;
* a running job beats a heartbeat; one whose process died (a killed RQ work-horse) is marked failed with the
  reason, its lock is freed and the deferred run starts.

Modules: `stores` (the state: in memory or in Redis), `coordination` (submit, execute, lost-job handling, the
same in both modes), `queue` (`TrainingQueue`, what the app uses; threads in-process), `worker` (RQ glue: the job
entry point, `TrainingWorker`, `run_worker` that reconnects to Redis).
"""
from .coordination import BEAT_TTL, FINAL, LOCK_MARGIN, JobFunc, import_func, job_path
from .queue import QueueUnavailable, TrainingQueue
from .stores import HISTORY, JobStore, MemoryStore, RedisStore
from .worker import QUEUE_NAME

__all__ = ["BEAT_TTL", "FINAL", "HISTORY", "LOCK_MARGIN", "QUEUE_NAME", "JobFunc", "JobStore", "MemoryStore",
           "QueueUnavailable", "RedisStore", "TrainingQueue", "import_func", "job_path"]
