"""Files that readers never see half-done: atomic writes, folders removed by renaming them away first, and the
advisory lock that serialises writers across processes."""
from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TRASH_PREFIX = ".trash-"


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` so readers see the old or the new content, never a mix.

    Args:
        path: the file to (re)place.
        text: its new content.
        mode: its permission bits, exactly (not filtered by the umask).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        # os.open's mode is filtered by the umask; fchmod makes it exact (0600 must not become 0644 or 0400).
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_tree(path: Path) -> None:
    """Delete a folder, renaming it away first: a half-deleted folder must never look like what it was.

    Deleting needs no free space, so this works on a full disk too.
    """
    trash = path.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def flocked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` (created when missing), across processes."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
