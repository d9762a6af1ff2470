"""A model derived from weights files (an ONNX or OpenVINO export), built once and cached under a folder named by
the content digest of its sources.

Shared by the task packages that export at first use (text_cls's int8 encoder, detection's OpenVINO model):
- `sources_digest`: SHA-256 of files and of a recipe string, so new weights or a new way of exporting never reuse a
  stale build;
- `build_once`: the cached folder, built when missing into a private folder and renamed into place (a process killed
  half-way never leaves a partial build where a reader looks), one build at a time per cache folder (gunicorn's
  workers start together, and N builds at once on the same cores take N times as long as one the others then read).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

LOCK_FILE = ".export.lock"


def sources_digest(files: Iterable[Path], recipe: str, names: bool = True) -> str:
    """Hex SHA-256 of `recipe` and of each file's bytes (and name, unless `names` is False), in the order given."""
    digest = hashlib.sha256(recipe.encode())
    for path in files:
        path = Path(path)
        if names:
            digest.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def build_once(target: Path, build: Callable[[Path], Path | None]) -> Path:
    """`target` (a folder), built by `build` when it is not there yet.

    Args:
        target: the cached folder; its parent is the cache folder (created) and holds the lock.
        build: called with an empty private folder inside the cache folder; it writes the build there and returns
            the folder to move into place (inside the private one), or None for the private folder itself.

    Returns:
        `target`.

    Raises:
        Whatever `build` raises (nothing is left behind).
    """
    target = Path(target)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
            try:
                os.rename(build(work) or work, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return target
