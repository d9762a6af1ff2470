from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from backends import versions
from backends.exceptions import VersionError
from backends.project_folders import STAGING_PREFIX
from backends.version_info import VersionInfo
from backends.versions import ModelStore


def _train(store: ModelStore, project_id: int, payload: str = "w") -> Path:
    staging = store.stage(project_id)
    (staging / "model.bin").write_text(payload)
    return staging


def _publish(store: ModelStore, project_id: int, payload: str = "w", **meta) -> VersionInfo:
    return store.publish(project_id, _train(store, project_id, payload), {"n_examples": 5, **meta})


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models", "text_cls", keep=3)


def test_publish_serves_the_new_version(store, tmp_path):
    assert store.current(7) is None
    staging = _train(store, 7, "one")
    assert staging.parent == tmp_path / "models" / "text_cls" / "7" and staging.name.startswith(STAGING_PREFIX)

    v1 = store.publish(7, staging, {"n_examples": 12, "metrics": {"accuracy": 0.8}, "labels": ["a", "b"]})
    assert (v1.name, v1.model_version, v1.status, v1.parent) == ("v1", "text_cls-v1", "published", None)
    assert not staging.exists()
    assert (v1.path / "model.bin").read_text() == "one"
    meta = json.loads((v1.path / "meta.json").read_text())
    assert meta["n_examples"] == 12 and meta["metrics"] == {"accuracy": 0.8} and meta["labels"] == ["a", "b"]
    assert meta["status"] == "published" and meta["created"]
    assert store.current(7) == v1

    v2 = _publish(store, 7, "two")
    assert (v2.name, v2.parent) == ("v2", "v1")
    assert store.current(7).name == "v2"
    assert store.get(7, "text_cls-v2") == store.get(7, "v2") == v2
    assert store.projects() == [7]
    assert v2.to_json(tmp_path / "models")["path"] == os.path.join("text_cls", "7", "v2")


def test_reject_keeps_the_served_version(store):
    v1 = _publish(store, 1)
    bad = store.reject(1, _train(store, 1), {"n_examples": 3, "metrics": {"accuracy": 0.1}}, "accuracy dropped")
    assert (bad.name, bad.status, bad.reason, bad.parent) == ("v2", "rejected", "accuracy dropped", "v1")
    assert store.current(1) == v1
    assert [v.name for v in store.list(1)] == ["v2", "v1"]
    assert [v.status for v in store.list(1)] == ["rejected", "published"]


def test_rollback(store):
    with pytest.raises(VersionError):
        store.rollback(1)  # base model: nothing to go back to
    _publish(store, 1)
    store.reject(1, _train(store, 1), {}, "worse")
    _publish(store, 1)
    assert store.current(1).name == "v3"
    assert store.rollback(1).name == "v1"  # skips the rejected v2
    assert store.current(1).name == "v1"
    with pytest.raises(VersionError, match="no published version"):
        store.rollback(1)
    assert store.rollback(1, to="text_cls-v3").name == "v3"
    with pytest.raises(VersionError, match="rejected"):
        store.rollback(1, to="v2")
    with pytest.raises(VersionError):
        store.rollback(1, to="v9")
    # A publish after a rollback gets a new number and records where it came from.
    v4 = _publish(store, 1)
    assert (v4.name, v4.parent) == ("v4", "v3")


def test_prune_keeps_newest_and_current(store):
    for _ in range(4):
        _publish(store, 1)
    assert [v.name for v in store.list(1)] == ["v4", "v3", "v2"]
    store.rollback(1, to="v2")
    for _ in range(3):
        store.reject(1, _train(store, 1), {}, "worse")
    _publish(store, 1)  # v8: prune runs with v2 still served... until now
    names = [v.name for v in store.list(1)]
    assert names == ["v8", "v7", "v6", "v5", "v4", "v3"]
    store.rollback(1, to="v3")
    for _ in range(3):
        _publish(store, 1)  # v9..v11
    names = [v.name for v in store.list(1)]
    # keep=3 published (v11, v10, v9) and 3 rejected (v7, v6, v5); v3 went when it stopped being served.
    assert names == ["v11", "v10", "v9", "v7", "v6", "v5"]
    store.rollback(1, to="v9")
    for _ in range(4):
        _publish(store, 1)
    assert "v9" not in [v.name for v in store.list(1)]
    assert not any(p.name.startswith(".trash-") for p in store.project_dir(1).iterdir())


def test_current_survives_pruning_while_rolled_back(store):
    for _ in range(2):
        _publish(store, 1)
    store.rollback(1, to="v1")
    for _ in range(5):
        store.reject(1, _train(store, 1), {}, "worse")
    assert store.current(1).name == "v1"
    assert (store.current(1).path / "model.bin").exists()


def test_numbers_are_never_reused(store):
    _publish(store, 1)
    _publish(store, 1)
    store.rollback(1)
    # Even if the newest folder disappears (by hand), the next version does not take its name.
    shutil.rmtree(store.project_dir(1) / "v2")
    assert _publish(store, 1).name == "v3"


def test_current_is_cached_but_sees_changes(store, monkeypatch):
    _publish(store, 1)
    first = store.current(1)
    reads = []
    original = store._read_info
    monkeypatch.setattr(store, "_read_info", lambda d: reads.append(d) or original(d))
    for _ in range(5):
        assert store.current(1) is first
    assert reads == []
    # Another process (another ModelStore) publishing is seen by this one.
    other = ModelStore(store.root, "text_cls")
    _publish(other, 1)
    assert store.current(1).name == "v2"


def test_current_pointing_at_missing_version_is_an_error(store):
    _publish(store, 1)
    (store.project_dir(1) / "CURRENT").write_text("v5\n")
    with pytest.raises(VersionError):
        store.current(1)


@pytest.mark.parametrize("bad", ["../x", "v1/../../x", "..", "v0", "v-1", "x1", "", "v1 ", "/etc/passwd"])
def test_version_names_are_confined(store, bad):
    _publish(store, 1)
    with pytest.raises(VersionError):
        store.get(1, bad)
    with pytest.raises(VersionError):
        store.rollback(1, to=bad)


@pytest.mark.parametrize("bad", ["../1", "1/../../etc", "-1", "1.5", "", True, None, 1.0, "١"])
def test_project_ids_are_confined(store, bad):
    with pytest.raises(VersionError):
        store.stage(bad)
    with pytest.raises(VersionError):
        store.current(bad)
    with pytest.raises(VersionError):
        store.save_project_settings(bad, {})


def test_bad_backend_and_foreign_staging(store, tmp_path):
    for bad in ["../x", "", ".hidden", "a/b"]:
        with pytest.raises(VersionError):
            ModelStore(tmp_path, bad)
    outside = tmp_path / f"{STAGING_PREFIX}evil"
    outside.mkdir()
    with pytest.raises(VersionError):
        store.publish(1, outside, {})
    other_project = store.stage(2)
    with pytest.raises(VersionError):
        store.publish(1, other_project, {})
    not_staging = store.project_dir(1) / "somewhere"
    not_staging.mkdir(parents=True)
    with pytest.raises(VersionError):
        store.reject(1, not_staging, {}, "x")
    assert store.list(1) == []


def test_symlink_out_of_root_is_rejected(tmp_path):
    root = tmp_path / "models"
    (root / "text_cls").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "text_cls" / "3")
    with pytest.raises(VersionError):
        ModelStore(root, "text_cls").stage(3)


def test_discard_and_stale_staging(store):
    staging = store.stage(1)
    store.discard(1, staging)
    assert not staging.exists()
    stale = store.stage(1)
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = store.stage(1)
    _publish(store, 1)
    assert not stale.exists() and fresh.exists()


def test_project_settings_are_private(store):
    assert store.load_project_settings(4) == {}
    old = os.umask(0o022)
    try:
        store.save_project_settings(4, {"access_token": "secret", "label_config": "<View/>"})
    finally:
        os.umask(old)
    path = store.project_dir(4) / "settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load_project_settings(4)["access_token"] == "secret"
    store.save_project_settings(4, {"access_token": "new"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.load_project_settings(4) == {"access_token": "new"}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def _publish_many(root: str, n: int, results) -> None:
    store = ModelStore(root, "text_cls", keep=100)
    for i in range(n):
        staging = store.stage(9)
        (staging / "model.bin").write_text(f"{os.getpid()}-{i}")
        results.put((store.publish(9, staging, {"pid": os.getpid()}).name, f"{os.getpid()}-{i}"))


def test_concurrent_publishes_get_distinct_numbers(tmp_path):
    root = str(tmp_path / "models")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_publish_many, args=(root, 5, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    got = [results.get(timeout=5) for _ in range(20)]
    names = [name for name, _ in got]
    assert sorted(names, key=lambda n: int(n[1:])) == [f"v{i}" for i in range(1, 21)]
    store = ModelStore(root, "text_cls")
    # Each folder holds the files of the publish that was told that name.
    for name, payload in got:
        assert (store.get(9, name).path / "model.bin").read_text() == payload
    assert store.current(9).name == "v20"


def _leftovers(store: ModelStore, project_id: int) -> list[str]:
    """What a failed commit might leave in the project folder: staging, trash and temporary files."""
    return sorted(p.name for p in store.project_dir(project_id).iterdir()
                  if p.name.startswith((STAGING_PREFIX, ".trash-")) or p.name.endswith(".tmp"))


def _fail_writing(monkeypatch, name: str, err: int = errno.ENOSPC) -> None:
    """Make versions' atomic write of the file called `name` fail as a full (or read-only) disk would."""
    original = versions.write_atomic

    def write(path, text, mode=0o644):
        if Path(path).name == name:
            raise OSError(err, os.strerror(err), str(path))
        return original(path, text, mode)

    monkeypatch.setattr(versions, "write_atomic", write)


def test_a_failure_after_the_rename_lists_no_unserved_version(store, monkeypatch):
    v1 = _publish(store, 1, "one")
    staging = _train(store, 1, "two")
    _fail_writing(monkeypatch, "CURRENT")
    with pytest.raises(OSError, match="No space left"):
        store.publish(1, staging, {"n_examples": 5})
    # v2 was never served: it is not listed as published, so neither a rollback nor a listing can pick it.
    assert store.current(1) == v1
    assert [v.name for v in store.list(1)] == ["v1"]
    assert not staging.exists() and _leftovers(store, 1) == []
    monkeypatch.undo()
    v3 = _publish(store, 1, "three")  # the number taken by the failed publish is not reused
    assert (v3.name, store.current(1).name) == ("v3", "v3")
    assert store.rollback(1).name == "v1"


def test_a_failure_before_the_rename_leaves_only_the_staging_folder(store, monkeypatch):
    v1 = _publish(store, 1)
    for name in ("LAST", "meta.json"):
        staging = _train(store, 1)
        with monkeypatch.context() as m:
            _fail_writing(m, name)
            with pytest.raises(OSError):
                store.publish(1, staging, {})
        assert store.current(1) == v1 and [v.name for v in store.list(1)] == ["v1"]
        assert _leftovers(store, 1) == [staging.name]  # the caller's to discard (training does)
        store.discard(1, staging)
        assert _leftovers(store, 1) == []


def test_a_failing_prune_does_not_fail_the_publish(store, monkeypatch):
    _publish(store, 1)

    def broken(pdir):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "_prune_versions", broken)
    assert _publish(store, 1).name == "v2" and store.current(1).name == "v2"


def test_stale_temporary_and_trash_files_are_pruned(store):
    _publish(store, 1)
    pdir = store.project_dir(1)
    old = time.time() - 3 * 24 * 3600
    stale = [pdir / ".CURRENT.0123abcd.tmp", pdir / ".trash-0123abcd"]
    stale[0].write_text("v1\n")
    stale[1].mkdir()
    for path in stale:
        os.utime(path, (old, old))
    fresh = pdir / ".settings.json.4567.tmp"
    fresh.write_text("{}")  # may belong to a write in progress
    _publish(store, 1)
    assert not any(p.exists() for p in stale) and fresh.exists()
