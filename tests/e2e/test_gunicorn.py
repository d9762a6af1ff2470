"""The production set-up: the text backend under gunicorn (2 gthread workers) with a real redis-server.

A version published from another process (here: the test itself, as an RQ worker would) and a rollback done with
the CLI are picked up by every worker without a restart; /metrics sums all workers; START_TRAINING goes to Redis.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from backends.config import Settings
from tests.samples import sentiment_examples
from backends.versions import ModelStore
from ops.services import ROOT, free_port, wait_for_port, wait_until

pytestmark = pytest.mark.e2e

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/>
  </Choices>
</View>"""
PID = 42
PROJECT = f"{PID}.1700000000"  # how Label Studio names a project to an ML backend
WORKERS = 2
# The worker's pid in each access log line, next to the request line (the rest of the set-up is the shipped one).
ACCESS_FORMAT = '%(p)s "%(r)s" %(s)s'  # %(p)s is "<pid>"
_ACCESS = re.compile(r'<(\d+)> "[A-Z]+ /[^ ?]*\?(?:[^ ]*&)?n=(\d+)[^ ]* HTTP/[\d.]+" (\d+)')  # requests tagged n=
_BOOT = re.compile(r"Booting worker with pid: (\d+)")


class Gunicorn:
    """`gunicorn -c backends/gunicorn_conf.py backends.wsgi:app` as a subprocess, with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.sent = 0  # /predict requests sent
        self._sent_lock = threading.Lock()
        env = {**env, "BIND": f"127.0.0.1:{self.port}", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-c", "backends/gunicorn_conf.py", "--access-logformat",
             ACCESS_FORMAT, "backends.wsgi:app"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        try:
            wait_for_port(self.port, 120, self.proc)
            self._wait_health(120)
            # the first worker answers /health while the others may still be booting
            wait_until(f"{WORKERS} gunicorn workers", lambda: len(self.worker_pids()) >= WORKERS, 120, self.log)
        except BaseException as e:
            self.stop()
            raise RuntimeError(f"gunicorn did not start: {e}\n{self.tail()}") from e

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def _wait_health(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + "/health", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no healthy answer on {self.url} within {timeout}s")
            time.sleep(0.25)

    def worker_pids(self) -> list[str]:
        return _BOOT.findall(self.log())

    def predict(self, n: int, text: str = "the pizza was delicious") -> dict:
        """One /predict on a new connection; `n` tags it in the access log."""
        with self._sent_lock:
            self.sent += 1
        r = requests.post(f"{self.url}/predict", params={"n": n}, headers={"Connection": "close"}, timeout=120,
                          json={"tasks": [{"id": 1, "data": {"text": text}}], "project": PROJECT,
                                "label_config": CONFIG, "params": {"context": None}})
        assert r.status_code == 200, f"{r.status_code} {r.text}\n{self.tail()}"
        return r.json()

    def multiproc_dirs(self) -> set[Path]:
        """The folders of the metric files the workers have mapped (gunicorn_conf.py makes one per start)."""
        found = set()
        for pid in self.worker_pids():
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            found |= {Path(m).parent for m in re.findall(r"(/\S+/(?:counter|histogram|gauge_\w+)_\d+\.db)$", maps,
                                                          re.M)}
        return found

    def stop(self) -> None:
        # the metrics folder gunicorn_conf.py made in the temp dir is removed by gunicorn when it exits
        made = {d for d in self.multiproc_dirs() if d.name.startswith("labelloop-prom-")}
        if self.proc.poll() is None:
            self.proc.terminate()  # the master stops its workers gracefully
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        self.leftover_metrics_dirs = {d for d in made if d.exists()}
        for d in self.leftover_metrics_dirs:
            shutil.rmtree(d, ignore_errors=True)


def _env(tmp_path: Path, weights_dir: Path, redis_url: str, preload: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # gunicorn_conf.py sets it
    env.update({"BACKEND": "text_cls", "WORKERS": str(WORKERS), "THREADS": "4", "MODEL_DIR": str(tmp_path / "models"),
                "WEIGHTS_DIR": str(weights_dir), "MEDIA_CACHE_DIR": str(tmp_path / "media"), "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "REDIS_URL": redis_url, "LOG_LEVEL": "info",
                "PRELOAD": "1" if preload else "0"})
    return env


@pytest.fixture
def gunicorn(tmp_path, weights_dir, redis_url):
    server = Gunicorn(_env(tmp_path, weights_dir, redis_url), tmp_path / "gunicorn.log")
    server.model_dir = tmp_path / "models"
    yield server
    server.stop()
    assert not server.leftover_metrics_dirs, "gunicorn left its metrics folder behind"


def _served_by(server: Gunicorn, tags: set[int], timeout: float = 10) -> dict[int, str]:
    """The worker pid that answered each tagged request, read from the access log (written just after the
    response, so it is polled)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {int(n): pid for pid, n, status in _ACCESS.findall(server.log()) if int(n) in tags}
        if set(found) == tags or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


_counter = iter(range(1, 1_000_000))


def _predict_on_every_worker(server: Gunicorn, expected: str, at_least: int = 20, at_most: int = 120) -> int:
    """Send /predict in concurrent batches of new connections until every worker has answered at least once
    (and `at_least` were sent); every answer must carry model_version `expected`. Returns how many were sent."""
    pids = set(server.worker_pids())
    assert len(pids) == WORKERS, server.tail()
    sent, answered_by, versions = 0, {}, {}
    with ThreadPoolExecutor(8) as pool:
        while sent < at_least or set(answered_by.values()) != pids:
            assert sent < at_most, f"only workers {set(answered_by.values())} of {pids} answered {sent} requests"
            tags = [next(_counter) for _ in range(10)]
            for n, body in zip(tags, pool.map(server.predict, tags)):
                versions[n] = body["model_version"]
                assert all(p["model_version"] == body["model_version"] for p in body["results"])
            sent += len(tags)
            answered_by.update(_served_by(server, set(tags)))
    wrong = {n: v for n, v in versions.items() if v != expected}
    assert not wrong, (f"expected {expected} from every worker; got {len(wrong)} others: "
                       f"{ {answered_by.get(n): v for n, v in wrong.items()} }")
    assert set(answered_by.values()) == pids
    return sent


def _fit_and_publish(backend, store: ModelStore) -> str:
    staging = store.stage(PID)
    result = backend.fit(sentiment_examples(), CONFIG, None, staging)
    assert result.metrics["text"]["sentiment"]["mode"] == "trained"
    return store.publish(PID, staging, {"n_examples": result.n_examples, "metrics": result.metrics}).model_version


def _cli(server: Gunicorn, *args: str) -> str:
    env = {**os.environ, "MODEL_DIR": str(server.model_dir)}
    proc = subprocess.run([sys.executable, "-m", "backends", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _metrics(server: Gunicorn) -> dict[str, list]:
    r = requests.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_every_worker_serves_published_and_rolled_back_versions(gunicorn, weights_dir):
    from backends.adapters.text_cls import TextClassificationAdapter

    for n in range(3):
        assert gunicorn.predict(next(_counter))["model_version"] == "text_cls-base"

    # train in this process, as an RQ worker on another host would: gunicorn is not told, nor restarted
    settings = Settings(model_dir=gunicorn.model_dir, weights_dir=weights_dir,
                        media_cache_dir=gunicorn.model_dir.parent / "media")
    backend = TextClassificationAdapter(settings)
    store = ModelStore(gunicorn.model_dir, "text_cls")
    assert _fit_and_publish(backend, store) == "text_cls-v1"
    _predict_on_every_worker(gunicorn, "text_cls-v1")
    body = gunicorn.predict(next(_counter), "the staff were lovely and the dessert delicious")
    assert body["results"][0]["result"][0]["value"]["choices"] == ["Positive"]

    assert _fit_and_publish(backend, store) == "text_cls-v2"
    _predict_on_every_worker(gunicorn, "text_cls-v2")

    assert "now serving text_cls-v1" in _cli(gunicorn, "versions", "rollback", "text_cls", str(PID), "--to", "v1")
    _predict_on_every_worker(gunicorn, "text_cls-v1")
    listing = _cli(gunicorn, "versions", "list", "text_cls", str(PID)).splitlines()
    current = [line.split()[1] for line in listing if line.startswith("*")]
    assert current == ["v1"], listing
    assert {line.lstrip("* ").split()[0] for line in listing} == {"v1", "v2"}

    # /metrics sums the request counters of both workers (PROMETHEUS_MULTIPROC_DIR from gunicorn_conf.py)
    dirs = gunicorn.multiproc_dirs()
    assert len(dirs) == 1 and next(iter(dirs)).name.startswith("labelloop-prom-"), dirs
    metrics = _metrics(gunicorn)
    predicts = [s for s in metrics["labelloop_http_requests_total"] if s.labels["endpoint"] == "/predict"]
    assert {s.labels["status"] for s in predicts} == {"200"}
    assert sum(s.value for s in predicts) == gunicorn.sent, (predicts, gunicorn.sent)
    served = [(s.labels, s.value) for s in metrics["labelloop_served_model_version"]]
    assert served == [({"backend": "text_cls", "project": str(PID), "model_version": "text_cls-v1"}, 1.0)]
    assert len(gunicorn.worker_pids()) == WORKERS  # no worker died and was replaced
    # gunicorn's per-user control socket is off: backends on one host must not take it from each other
    assert "Control socket listening" not in gunicorn.log()


def test_start_training_webhook_is_queued_in_redis(gunicorn, redis_url):
    import redis
    from rq import Queue

    from backends.jobs import QUEUE_NAME

    r = requests.post(gunicorn.url + "/webhook", json={"action": "START_TRAINING", "project": {"id": PID}},
                      timeout=30)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["status"] == "queued" and answer["project"] == PID
    # every worker reads the job from Redis, whichever one took the webhook
    pids, answered_by = set(gunicorn.worker_pids()), {}

    def jobs(n: int) -> list[tuple]:
        r = requests.get(gunicorn.url + "/jobs", params={"project": PID, "n": n}, headers={"Connection": "close"},
                         timeout=30)
        return [(j["id"], j["status"], j["reason"]) for j in r.json()["jobs"]]

    # /jobs answers in a millisecond, so one worker can win every accept; predictions sent alongside keep both
    # workers busy, which spreads the /jobs requests over them
    with ThreadPoolExecutor(8) as pool:
        while set(answered_by.values()) != pids:
            assert len(answered_by) < 200, f"only workers {set(answered_by.values())} of {pids} answered"
            tags = [next(_counter) for _ in range(12)]
            listings = pool.map(lambda n: jobs(n) if n % 2 else gunicorn.predict(n, "busy"), tags)
            for n, listing in zip(tags, listings):
                if n % 2:
                    assert listing == [(answer["job_id"], "queued", "START_TRAINING")]
            answered_by.update(_served_by(gunicorn, {n for n in tags if n % 2}))
    # no RQ worker runs here: the job waits in Redis instead of running in the web process
    connection = redis.Redis.from_url(redis_url)
    try:
        assert Queue(QUEUE_NAME, connection=connection).get_job_ids() == [answer["job_id"]]
    finally:
        connection.close()
    # a second request joins the queued job
    again = requests.post(gunicorn.url + "/webhook", json={"action": "START_TRAINING", "project": {"id": PID}},
                          timeout=30).json()
    assert again["status"] == "coalesced" and again["job_id"] == answer["job_id"]


def test_preloaded_workers_share_the_loaded_base_model(tmp_path, weights_dir, redis_url):
    # PRELOAD=1 loads the model in the master before forking; a loader thread caught mid-load by the fork used to
    # leave the workers "loading" for ever
    server = Gunicorn(_env(tmp_path, weights_dir, redis_url, preload=True), tmp_path / "gunicorn.log")
    try:
        assert requests.get(server.url + "/health", timeout=10).json()["model"] == "ready"
        _predict_on_every_worker(server, "text_cls-base", at_least=4)
    finally:
        server.stop()
