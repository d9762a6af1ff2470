"""export_cache: a build is made once per target, atomically, one builder at a time across processes."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from export_cache import build_once, sources_digest


def _slow_build(target: str, log: str) -> None:
    def build(work: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)  # the other process reaches the lock meanwhile
        (work / "model.bin").write_bytes(b"x")

    build_once(Path(target), build)


def test_two_processes_build_once(tmp_path: Path) -> None:
    target, log = tmp_path / "cache" / "model-abc", tmp_path / "log"
    procs = [multiprocessing.get_context("fork").Process(target=_slow_build, args=(str(target), str(log)))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text() == "built\n"
    assert (target / "model.bin").read_bytes() == b"x"


def test_a_failed_build_leaves_nothing_and_a_subfolder_can_be_the_build(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model-abc"

    def failing(work: Path) -> None:
        (work / "half").write_bytes(b"x")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        build_once(target, failing)
    assert sorted(p.name for p in target.parent.iterdir()) == [".export.lock"]

    def nested(work: Path) -> Path:
        (work / "out").mkdir()
        (work / "out" / "model.xml").write_text("<net/>")
        (work / "scratch").write_text("left behind")
        return work / "out"

    assert build_once(target, nested) == target
    assert sorted(p.name for p in target.iterdir()) == ["model.xml"]
    assert sorted(p.name for p in target.parent.iterdir()) == [".export.lock", "model-abc"]
    assert build_once(target, failing) == target  # there: not built again


def test_digest_follows_bytes_names_and_recipe(tmp_path: Path) -> None:
    a = tmp_path / "a.pt"
    a.write_bytes(b"weights")
    first = sources_digest([a], "recipe 1")
    assert sources_digest([a], "recipe 1") == first
    assert sources_digest([a], "recipe 2") != first
    b = tmp_path / "b.pt"
    b.write_bytes(b"weights")
    assert sources_digest([b], "recipe 1") != first and sources_digest([b], "recipe 1", names=False) == \
        sources_digest([a], "recipe 1", names=False)
    a.write_bytes(b"weights2")
    assert sources_digest([a], "recipe 1") != first
