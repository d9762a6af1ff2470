"""A training run as the queue runs it in-process, and fault drills for its publish: a full and a read-only
MODEL_DIR. The served model must stay the last good one and nothing of the failed run may stay behind (no
staging folder, no temporary file, no version).

The disk faults are real (a small tmpfs, filled or remounted read-only) where this machine lets the tests mount
one (root); a full disk is also simulated everywhere by a fit whose write fails with ENOSPC. Label Studio is a
stand-in here: these drills are about MODEL_DIR; the real one is in the e2e tests.
"""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from backends import training
from backends.base import Adapter, LabeledTask, TrainResult
from backends.config import Settings
from backends.jobs import TrainingQueue, job_path
from backends.versions import ModelStore

PROJECT = 3
OPEN = [{"id": i, "data": {"text": f"open {i}"}} for i in range(10, 15)]


class FileModelAdapter(Adapter):
    """A backend whose model is one file of `size` bytes: enough to fill a disk on purpose."""

    name = "text_cls"

    def __init__(self, settings: Settings, size: int = 1000):
        super().__init__(settings)
        self.size = size

    def check_config(self, label_config: str) -> None:
        pass

    def load_model(self, version_dir: Path | None):
        return None if version_dir is None else (version_dir / "model.bin").read_bytes()[:1]

    def predict(self, model, tasks, label_config, context=None, params=None, media=None):
        return []

    def fit(self, examples, label_config, parent, out_dir, params=None, media=None) -> TrainResult:
        with open(out_dir / "model.bin", "wb") as f:
            f.write(os.urandom(self.size))  # random: no filesystem can make it smaller
        return TrainResult(n_examples=len(examples), metrics={"accuracy": 0.9})


def _fake_label_studio(monkeypatch) -> None:
    tasks = [LabeledTask(task_id=i, data={"text": f"t{i}"}, result=[], annotation_id=i) for i in range(4)]
    client = SimpleNamespace(url="http://127.0.0.1:9", auth_headers=lambda: {},
                             training_tasks=lambda pid, limit=0: (tasks, OPEN[:limit]),
                             get_label_config=lambda pid: "<View/>")
    monkeypatch.setattr(training, "client_for", lambda *a, **k: client)


def test_open_tasks_reach_only_an_adapter_that_wants_them(tmp_path, monkeypatch):
    _fake_label_studio(monkeypatch)
    settings = _settings(tmp_path / "models", tmp_path)
    got = {}

    class WantsOpenTasks(FileModelAdapter):
        def open_tasks_wanted(self, params=None):
            return 2

        def fit(self, examples, label_config, parent, out_dir, params=None, media=None, open_tasks=None):
            got["open"] = open_tasks
            return super().fit(examples, label_config, parent, out_dir, params, media)

    training.train_project("text_cls", PROJECT, force=True, settings=settings, adapter=WantsOpenTasks(settings))
    assert got["open"] == [{"id": 10, "data": {"text": "open 10"}}, {"id": 11, "data": {"text": "open 11"}}]
    # an adapter that wants none is called as before (FileModelAdapter.fit takes no open_tasks)
    assert _train(settings, 10)["status"] == "published"


def _settings(model_dir: Path, tmp_path: Path) -> Settings:
    return Settings(model_dir=model_dir, media_cache_dir=tmp_path / "media", label_studio_url="http://127.0.0.1:9",
                    api_key="token")


def _contents(store: ModelStore) -> dict[str, int]:
    """Every path under the project folder with its size: the state a failed run must leave unchanged."""
    pdir = store.project_dir(PROJECT)
    return {str(p.relative_to(pdir)): p.stat().st_size for p in sorted(pdir.rglob("*")) if p.is_file()}


def _train(settings: Settings, size: int) -> dict:
    return training.train_project("text_cls", PROJECT, force=True, settings=settings,
                                  adapter=FileModelAdapter(settings, size))


def _check_unchanged(store: ModelStore, before: dict[str, int]) -> None:
    assert store.current(PROJECT).name == "v1"
    assert [v.name for v in store.list(PROJECT)] == ["v1"]
    assert _contents(store) == before
    assert not [p for p in store.project_dir(PROJECT).iterdir() if p.name not in {"v1", "CURRENT", "LAST", ".lock"}]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs mounted for the test; skipped where mounting is not allowed."""
    mount = tmp_path / "models"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


def test_a_fit_failing_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    _fake_label_studio(monkeypatch)
    settings = _settings(tmp_path / "models", tmp_path)
    assert _train(settings, 100)["version"] == "v1"
    store = ModelStore(settings.model_dir, "text_cls")
    before = _contents(store)

    class FullDisk(FileModelAdapter):
        def fit(self, examples, label_config, parent, out_dir, params=None, media=None):
            (out_dir / ".weights.pt.tmp").write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        training.train_project("text_cls", PROJECT, force=True, settings=settings, adapter=FullDisk(settings))
    _check_unchanged(store, before)


def test_a_full_model_dir(tiny_disk, tmp_path, monkeypatch):
    _fake_label_studio(monkeypatch)
    settings = _settings(tiny_disk, tmp_path)
    assert _train(settings, 100_000)["version"] == "v1"
    store = ModelStore(settings.model_dir, "text_cls")
    before = _contents(store)
    # The fit itself runs out of space...
    with pytest.raises(OSError) as err:
        _train(settings, 2 << 20)
    assert err.value.errno == errno.ENOSPC
    _check_unchanged(store, before)
    # ...or the model just fits and the version's own files (LAST, meta.json, CURRENT) do not.
    stats = os.statvfs(tiny_disk)
    with pytest.raises(OSError) as err:
        _train(settings, stats.f_bavail * stats.f_frsize)
    assert err.value.errno == errno.ENOSPC
    _check_unchanged(store, before)
    # The space is all given back: a model of the first one's size still publishes.
    assert _train(settings, 100_000)["version"] == "v2"


def test_a_read_only_model_dir(tiny_disk, tmp_path, monkeypatch):
    _fake_label_studio(monkeypatch)
    settings = _settings(tiny_disk, tmp_path)
    assert _train(settings, 1000)["version"] == "v1"
    store = ModelStore(settings.model_dir, "text_cls")
    before = _contents(store)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True, timeout=10)
    try:
        with pytest.raises(OSError) as err:
            _train(settings, 1000)
        assert err.value.errno == errno.EROFS
        _check_unchanged(store, before)
        assert ModelStore(settings.model_dir, "text_cls").current(PROJECT).name == "v1"  # still served
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_disk)], check=True, timeout=10)
    assert _train(settings, 1000)["version"] == "v2"


def test_in_process_training_reuses_the_serving_adapter_and_settings(tmp_path, monkeypatch):
    _fake_label_studio(monkeypatch)
    monkeypatch.setattr(training, "create", lambda *a: pytest.fail("a second adapter was built"))
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "not-the-app-one"))
    settings = Settings(model_dir=tmp_path / "models", media_cache_dir=tmp_path / "media")
    adapter = FileModelAdapter(settings)
    job = training.trainer(adapter, settings)
    # An RQ worker gets only the function's path, and builds its own adapter from its own environment.
    assert job_path(job) == "backends.training.train_project"
    q = TrainingQueue("text_cls", settings, job_func=job)
    try:
        record = q.wait(q.submit(PROJECT, "webhook")["job_id"], 10)
    finally:
        q.close()
    assert record["status"] == "succeeded" and record["result"]["version"] == "v1", record
    assert (tmp_path / "models" / "text_cls" / str(PROJECT) / "v1" / "model.bin").is_file()
    assert not (tmp_path / "not-the-app-one").exists()
