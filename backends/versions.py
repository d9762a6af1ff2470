"""Per-project model versions on disk, under MODEL_DIR.

Layout::

    <root>/<backend>/<project_id>/
        v1/meta.json ...      one folder per trained version (published or rejected)
        CURRENT               the name of the served version ("v3")
        LAST                  the highest version number ever allocated, so numbers are never reused
        settings.json         per-project settings from /setup (mode 0600: may hold an access token)
        .lock                 flock'ed while numbers are allocated or CURRENT changes
        .staging-<uuid>/      where a running fit writes, renamed to v<N> when done

A version folder appears only by `os.rename` of a complete staging folder, and CURRENT only changes by
`os.replace`, so a reader never sees a half-written version. A publish whose CURRENT cannot be written (a full or
read-only disk) removes the version it renamed: a version listed as published has been served.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .exceptions import VersionError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"v([1-9][0-9]{0,8})")
_BACKEND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
STAGING_PREFIX = ".staging-"
# A staging folder this old belongs to a fit that died; fits are bounded by TRAIN_TIMEOUT well below this.
STALE_STAGING_S = 2 * 24 * 3600


@dataclass
class VersionInfo:
    """One trained version of a project's model, as recorded in its meta.json."""

    name: str
    model_version: str
    path: Path
    status: str
    created: str = ""
    parent: str | None = None
    n_examples: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_json(self, root: str | Path | None = None) -> dict:
        """A JSON-able dict; `path` is made relative to `root` when given so no absolute prefix leaks.

        Args:
            root: the model root to strip from `path`.

        Returns:
            The fields as plain values.
        """
        path = self.path
        if root is not None:
            try:
                path = self.path.relative_to(Path(root).resolve())
            except ValueError:
                pass
        return {"name": self.name, "model_version": self.model_version, "path": str(path),
                "status": self.status, "created": self.created, "parent": self.parent,
                "n_examples": self.n_examples, "metrics": self.metrics, "reason": self.reason}


def version_number(name: str) -> int:
    """The N of a version name "vN".

    Args:
        name: a version name.

    Returns:
        N, or raises VersionError for anything else (which also keeps "../x" out of paths).
    """
    m = _NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise VersionError(f"not a version name: {name!r} (expected v1, v2, ...)")
    return int(m.group(1))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` so readers see the old or the new content, never a mix."""
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


class ModelStore:
    """Versions of one backend's models, per Label Studio project, under a root folder.

    Args:
        root: MODEL_DIR; everything this store touches stays inside it.
        backend: the backend name ("text_cls"), used in paths and in model_version strings.
        keep: how many published (and, separately, rejected) versions to keep per project.
    """

    def __init__(self, root: str | Path, backend: str, keep: int = 10):
        if not isinstance(backend, str) or not _BACKEND.fullmatch(backend):
            raise VersionError(f"bad backend name: {backend!r}")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = Path(root).resolve()
        self.backend = backend
        self.keep = keep
        self._cache: dict[int, tuple[tuple[int, int, int], VersionInfo]] = {}
        self._cache_lock = threading.Lock()

    # paths

    def _inside(self, path: Path) -> Path:
        """`path` resolved, or VersionError when it (or a symlink on the way) leads out of the root."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise VersionError("refusing a path outside the model root")
        return resolved

    def project_dir(self, project_id: int | str) -> Path:
        """The project's folder (not created).

        Args:
            project_id: a Label Studio project id (an int, or a string of digits).

        Returns:
            `<root>/<backend>/<project_id>`.
        """
        if isinstance(project_id, bool) or not isinstance(project_id, (int, str)):
            raise VersionError(f"bad project id: {project_id!r}")
        text = str(project_id)
        if not text.isascii() or not text.isdigit():
            raise VersionError(f"bad project id: {project_id!r}")
        return self._inside(self.root / self.backend / str(int(text)))

    def _version_dir(self, project_id: int | str, name: str) -> Path:
        return self._inside(self.project_dir(project_id) / f"v{version_number(self._short(name))}")

    def _short(self, version: str) -> str:
        # Label Studio and the CLI know versions by model_version ("text_cls-v3"); accept that spelling too.
        prefix = f"{self.backend}-"
        if isinstance(version, str) and version.startswith(prefix):
            return version[len(prefix):]
        return version

    def model_version(self, name: str) -> str:
        """The model_version string Label Studio shows for a version name."""
        return f"{self.backend}-{name}"

    @contextmanager
    def _locked(self, project_id: int | str) -> Iterator[Path]:
        """Hold the project's flock: one allocator / CURRENT writer at a time, across processes."""
        pdir = self.project_dir(project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(pdir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield pdir
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # reading

    def _read_info(self, vdir: Path) -> VersionInfo:
        try:
            meta = json.loads((vdir / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VersionError(f"version {vdir.name} does not exist") from None
        except (OSError, ValueError) as e:
            raise VersionError(f"version {vdir.name} has an unreadable meta.json: {e}") from None
        return VersionInfo(
            name=vdir.name, model_version=self.model_version(vdir.name), path=vdir,
            status=str(meta.get("status", "published")), created=str(meta.get("created", "")),
            parent=meta.get("parent"), n_examples=meta.get("n_examples"),
            metrics=dict(meta.get("metrics") or {}), reason=str(meta.get("reason") or ""))

    def get(self, project_id: int | str, version: str) -> VersionInfo:
        """One version.

        Args:
            project_id: the project.
            version: "v3" or "text_cls-v3".

        Returns:
            Its VersionInfo; VersionError if it does not exist.
        """
        return self._read_info(self._version_dir(project_id, version))

    def _numbers(self, pdir: Path) -> list[int]:
        if not pdir.is_dir():
            return []
        numbers = []
        for entry in pdir.iterdir():
            m = _NAME.fullmatch(entry.name)
            if m and entry.is_dir():
                numbers.append(int(m.group(1)))
        return sorted(numbers, reverse=True)

    def list(self, project_id: int | str) -> list[VersionInfo]:
        """All versions of a project, newest first, rejected ones included.

        Args:
            project_id: the project.

        Returns:
            VersionInfos; a folder with a broken meta.json is skipped with a warning.
        """
        pdir = self.project_dir(project_id)
        infos = []
        for n in self._numbers(pdir):
            try:
                infos.append(self._read_info(pdir / f"v{n}"))
            except VersionError as e:
                logger.warning("skipping %s/%s: %s", pdir, f"v{n}", e)
        return infos

    def _current_name(self, pdir: Path) -> str | None:
        try:
            name = (pdir / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def current(self, project_id: int | str) -> VersionInfo | None:
        """The served version, or None when the project still uses the base model.

        Cheap enough for every request: a stat of CURRENT, and meta.json is read only when CURRENT changed.

        Args:
            project_id: the project.

        Returns:
            Its VersionInfo; VersionError if CURRENT names a version that is gone.
        """
        pdir = self.project_dir(project_id)
        try:
            st = os.stat(pdir / "CURRENT")
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        pid = int(project_id)
        with self._cache_lock:
            cached = self._cache.get(pid)
        if cached is not None and cached[0] == key:
            return cached[1]
        name = self._current_name(pdir)
        if name is None:
            return None
        info = self._read_info(self._version_dir(pid, name))
        with self._cache_lock:
            self._cache[pid] = (key, info)
        return info

    def projects(self) -> list[int]:
        """Ids of the projects that have a folder under this backend, ascending."""
        base = self.root / self.backend
        if not base.is_dir():
            return []
        return sorted(int(p.name) for p in base.iterdir() if p.name.isascii() and p.name.isdigit() and p.is_dir())

    # writing

    def stage(self, project_id: int | str) -> Path:
        """A fresh, empty folder inside the project folder for a fit to write its files.

        Args:
            project_id: the project.

        Returns:
            The staging folder; pass it to `publish`, `reject` or `discard`.
        """
        pdir = self.project_dir(project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        staging = pdir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        return staging

    def _check_staging(self, project_id: int | str, staging: str | Path) -> Path:
        path = Path(staging)
        if not path.name.startswith(STAGING_PREFIX) or path.parent.resolve() != self.project_dir(project_id):
            raise VersionError(f"not a staging folder of project {project_id}: {staging}")
        path = self._inside(path)
        if not path.is_dir():
            raise VersionError(f"staging folder is gone: {staging}")
        return path

    def discard(self, project_id: int | str, staging: str | Path) -> None:
        """Delete a staging folder whose fit failed.

        Args:
            project_id: the project.
            staging: the folder from `stage`.
        """
        path = Path(staging)
        if path.exists():
            shutil.rmtree(self._check_staging(project_id, path), ignore_errors=True)

    def publish(self, project_id: int | str, staging: str | Path, meta: dict) -> VersionInfo:
        """Turn a staging folder into the next version and serve it.

        Args:
            project_id: the project.
            staging: the folder from `stage`, holding the model files.
            meta: n_examples, metrics, parent and any other fields to record in meta.json.

        Returns:
            The new version, now CURRENT.
        """
        return self._commit(project_id, staging, meta, "published", str(meta.get("reason") or ""))

    def reject(self, project_id: int | str, staging: str | Path, meta: dict, reason: str) -> VersionInfo:
        """Keep a staging folder as the next version, marked rejected; the served version stays.

        Args:
            project_id: the project.
            staging: the folder from `stage`.
            meta: as for `publish`.
            reason: why it was not published (shown in listings).

        Returns:
            The rejected version.
        """
        return self._commit(project_id, staging, meta, "rejected", reason)

    def _commit(self, project_id: int | str, staging: str | Path, meta: dict, status: str,
                reason: str) -> VersionInfo:
        src = self._check_staging(project_id, staging)
        with self._locked(project_id) as pdir:
            last_file = pdir / "LAST"
            try:
                last = int(last_file.read_text(encoding="utf-8").strip() or 0)
            except (FileNotFoundError, ValueError):
                last = 0
            n = max([last, *self._numbers(pdir)]) + 1
            name = f"v{n}"
            current = self._current_name(pdir)
            record = {**meta, "name": name, "model_version": self.model_version(name), "backend": self.backend,
                      "project_id": int(project_id), "created": _now(),
                      "parent": meta.get("parent", current), "n_examples": meta.get("n_examples"),
                      "metrics": meta.get("metrics") or {}, "status": status, "reason": reason}
            # The number is taken first and meta.json goes in before the rename, so a v<N> folder is complete
            # the moment it exists; a failure up to the rename leaves only the staging folder (the caller's).
            _write_atomic(last_file, f"{n}\n")
            _write_atomic(src / "meta.json", json.dumps(record, indent=2, default=str) + "\n")
            dest = pdir / name
            os.rename(src, dest)
            if status == "published":
                try:
                    _write_atomic(pdir / "CURRENT", f"{name}\n")
                except BaseException:
                    # Never served, so it must not be listed as published (a rollback would pick it).
                    try:
                        self._remove(dest)
                    except OSError as e:
                        logger.error("%s: could not remove %s, published but never served: %s", pdir, name, e)
                    raise
            self._prune(pdir)
        logger.info("%s project %s: %s %s (%s)", self.backend, project_id, status, name, reason or "ok")
        # Built from the record, not re-read: a concurrent publish may already have pruned `dest`.
        return VersionInfo(name=name, model_version=record["model_version"], path=dest, status=status,
                           created=record["created"], parent=record["parent"], n_examples=record["n_examples"],
                           metrics=dict(record["metrics"]), reason=reason)

    def rollback(self, project_id: int | str, to: str | None = None) -> VersionInfo:
        """Serve an earlier published version.

        Args:
            project_id: the project.
            to: a published version ("v2" or "text_cls-v2"); default the newest published one older
                than the current one.

        Returns:
            The version now CURRENT; VersionError if there is none to go back to.
        """
        with self._locked(project_id) as pdir:
            if to is not None:
                target = self.get(project_id, to)
                if target.status != "published":
                    raise VersionError(f"{target.name} was {target.status}, not published; cannot serve it")
            else:
                current = self._current_name(pdir)
                if current is None:
                    raise VersionError(f"project {project_id} serves the base model; nothing to roll back")
                below = version_number(current)
                older = [v for v in self.list(project_id) if v.status == "published"
                         and version_number(v.name) < below]
                if not older:
                    raise VersionError(f"no published version before {current} in project {project_id}")
                target = older[0]
            _write_atomic(pdir / "CURRENT", f"{target.name}\n")
        logger.info("%s project %s: rolled back to %s", self.backend, project_id, target.name)
        return target

    def _prune(self, pdir: Path) -> None:
        """Keep the newest `keep` published and `keep` rejected versions, and always CURRENT's target; remove
        what dead fits left (staging folders and temporary files).

        Called with the project lock held, after a commit: housekeeping, so a failure is logged, not raised.
        """
        try:
            self._prune_versions(pdir)
            self._prune_leftovers(pdir)
        except OSError as e:
            logger.warning("%s: pruning old versions failed: %s", pdir, e)

    def _prune_versions(self, pdir: Path) -> None:
        current = self._current_name(pdir)
        kept = {"published": 0, "rejected": 0}
        for n in self._numbers(pdir):
            name = f"v{n}"
            try:
                status = self._read_info(pdir / name).status
            except VersionError:
                continue  # broken folders are left for a person to look at
            kept[status] = kept.get(status, 0) + 1
            if kept[status] > self.keep and name != current:
                self._remove(pdir / name)

    def _prune_leftovers(self, pdir: Path) -> None:
        # A staging folder or a temporary file this old belongs to a process that died mid-write.
        cutoff = time.time() - STALE_STAGING_S
        for entry in [*pdir.glob(f"{STAGING_PREFIX}*"), *pdir.glob(".trash-*"), *pdir.glob(".*.tmp")]:
            try:
                if entry.lstat().st_mtime >= cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    self._remove(entry)
                else:
                    entry.unlink()
            except FileNotFoundError:
                pass

    @staticmethod
    def _remove(path: Path) -> None:
        # Rename away first: a half-deleted folder must never look like a version. Deleting needs no free space,
        # so this works on a full disk too.
        trash = path.with_name(f".trash-{uuid.uuid4().hex}")
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # per-project settings

    def save_project_settings(self, project_id: int | str, data: dict) -> None:
        """Store a project's settings (from /setup) as settings.json, readable by the owner only.

        Args:
            project_id: the project.
            data: JSON-able settings; may include a Label Studio access token.
        """
        pdir = self.project_dir(project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        _write_atomic(pdir / "settings.json", json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)

    def load_project_settings(self, project_id: int | str) -> dict:
        """A project's saved settings.

        Args:
            project_id: the project.

        Returns:
            The dict saved last, or {} when there is none.
        """
        try:
            return json.loads((self.project_dir(project_id) / "settings.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
