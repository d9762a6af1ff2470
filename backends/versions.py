"""Per-project model versions: publish, reject, list, serve (CURRENT), roll back, prune.

The folders they live in are `project_folders.py`'s; a version's record is `version_info.py`'s.

A version folder appears only by `os.rename` of a complete staging folder, and CURRENT only changes by
`os.replace`, so a reader never sees a half-written version. A publish whose CURRENT cannot be written (a full or
read-only disk) removes the version it renamed: a version listed as published has been served.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from .atomic_files import remove_tree, write_atomic
from .exceptions import VersionError
from .project_folders import ProjectFolders
from .version_info import VersionInfo, read_version, version_number, version_numbers

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ModelStore(ProjectFolders):
    """Versions of one backend's models, per Label Studio project, under a root folder.

    Args:
        root: MODEL_DIR; everything this store touches stays inside it.
        backend: the backend name ("text_cls"), used in paths and in model_version strings.
        keep: how many published (and, separately, rejected) versions to keep per project.
    """

    def __init__(self, root: str | Path, backend: str, keep: int = 10):
        super().__init__(root, backend)
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self._cache: dict[int, tuple[tuple[int, int, int], VersionInfo]] = {}
        self._cache_lock = threading.Lock()

    # reading

    def _read_info(self, vdir: Path) -> VersionInfo:
        return read_version(vdir, self.model_version(vdir.name))

    def get(self, project_id: int | str, version: str) -> VersionInfo:
        """One version.

        Args:
            project_id: the project.
            version: "v3" or "text_cls-v3".

        Returns:
            Its VersionInfo; VersionError if it does not exist.
        """
        return self._read_info(self._version_dir(project_id, version))

    def list(self, project_id: int | str) -> list[VersionInfo]:
        """All versions of a project, newest first, rejected ones included.

        Args:
            project_id: the project.

        Returns:
            VersionInfos; a folder with a broken meta.json is skipped with a warning.
        """
        pdir = self.project_dir(project_id)
        infos = []
        for n in version_numbers(pdir):
            try:
                infos.append(self._read_info(pdir / f"v{n}"))
            except VersionError as e:
                logger.warning("skipping %s/%s: %s", pdir, f"v{n}", e)
        return infos

    @staticmethod
    def _current_name(pdir: Path) -> str | None:
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

    # writing

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

    @staticmethod
    def _next_number(pdir: Path) -> int:
        """One above both LAST and every version folder (a folder removed by hand does not free its number)."""
        try:
            last = int((pdir / "LAST").read_text(encoding="utf-8").strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        return max([last, *version_numbers(pdir)]) + 1

    def _commit(self, project_id: int | str, staging: str | Path, meta: dict, status: str,
                reason: str) -> VersionInfo:
        src = self._check_staging(project_id, staging)
        with self._locked(project_id) as pdir:
            n = self._next_number(pdir)
            name = f"v{n}"
            record = {**meta, "name": name, "model_version": self.model_version(name), "backend": self.backend,
                      "project_id": int(project_id), "created": _now(),
                      "parent": meta.get("parent", self._current_name(pdir)), "n_examples": meta.get("n_examples"),
                      "metrics": meta.get("metrics") or {}, "status": status, "reason": reason}
            # The number is taken first and meta.json goes in before the rename, so a v<N> folder is complete
            # the moment it exists; a failure up to the rename leaves only the staging folder (the caller's).
            write_atomic(pdir / "LAST", f"{n}\n")
            write_atomic(src / "meta.json", json.dumps(record, indent=2, default=str) + "\n")
            dest = pdir / name
            os.rename(src, dest)
            if status == "published":
                self._serve_new(pdir, dest)
            self._prune(pdir)
        logger.info("%s project %s: %s %s (%s)", self.backend, project_id, status, name, reason or "ok")
        # Built from the record, not re-read: a concurrent publish may already have pruned `dest`.
        return VersionInfo(name=name, model_version=record["model_version"], path=dest, status=status,
                           created=record["created"], parent=record["parent"], n_examples=record["n_examples"],
                           metrics=dict(record["metrics"]), reason=reason)

    @staticmethod
    def _serve_new(pdir: Path, dest: Path) -> None:
        """Point CURRENT at the version just renamed into place, or remove that version when CURRENT cannot be
        written: never served, so it must not be listed as published (a rollback would pick it)."""
        try:
            write_atomic(pdir / "CURRENT", f"{dest.name}\n")
        except BaseException:
            try:
                remove_tree(dest)
            except OSError as e:
                logger.error("%s: could not remove %s, published but never served: %s", pdir, dest.name, e)
            raise

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
            write_atomic(pdir / "CURRENT", f"{target.name}\n")
        logger.info("%s project %s: rolled back to %s", self.backend, project_id, target.name)
        return target

    # pruning

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
        for n in version_numbers(pdir):
            name = f"v{n}"
            try:
                status = self._read_info(pdir / name).status
            except VersionError:
                continue  # broken folders are left for a person to look at
            kept[status] = kept.get(status, 0) + 1
            if kept[status] > self.keep and name != current:
                remove_tree(pdir / name)
