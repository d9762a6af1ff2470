"""Where a backend keeps each Label Studio project's files, under MODEL_DIR.

Layout::

    <root>/<backend>/<project_id>/
        v1/meta.json ...      one folder per trained version (published or rejected), see versions.py
        CURRENT               the name of the served version ("v3")
        LAST                  the highest version number ever allocated, so numbers are never reused
        settings.json         per-project settings from /setup (mode 0600: may hold an access token)
        .lock                 flock'ed while numbers are allocated or CURRENT changes
        .staging-<uuid>/      where a running fit writes, renamed to v<N> when done

Every path is checked to stay inside the root (symlinks included); the project id is digits only.
"""
from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .atomic_files import TRASH_PREFIX, flocked, remove_tree, write_atomic
from .exceptions import VersionError
from .version_info import version_number

_BACKEND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
STAGING_PREFIX = ".staging-"
# A staging folder this old belongs to a fit that died; fits are bounded by TRAIN_TIMEOUT well below this.
STALE_STAGING_S = 2 * 24 * 3600


class ProjectFolders:
    """The folders of one backend's projects under a root: paths, staging folders, per-project settings.

    Args:
        root: MODEL_DIR; everything this touches stays inside it.
        backend: the backend name ("text_cls"), used in paths and in model_version strings.
    """

    def __init__(self, root: str | Path, backend: str):
        if not isinstance(backend, str) or not _BACKEND.fullmatch(backend):
            raise VersionError(f"bad backend name: {backend!r}")
        self.root = Path(root).resolve()
        self.backend = backend

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
        with flocked(pdir / ".lock"):
            yield pdir

    def projects(self) -> list[int]:
        """Ids of the projects that have a folder under this backend, ascending."""
        base = self.root / self.backend
        if not base.is_dir():
            return []
        return sorted(int(p.name) for p in base.iterdir() if p.name.isascii() and p.name.isdigit() and p.is_dir())

    # staging

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

    def _prune_leftovers(self, pdir: Path) -> None:
        # A staging folder or a temporary file this old belongs to a process that died mid-write.
        cutoff = time.time() - STALE_STAGING_S
        for entry in [*pdir.glob(f"{STAGING_PREFIX}*"), *pdir.glob(f"{TRASH_PREFIX}*"), *pdir.glob(".*.tmp")]:
            try:
                if entry.lstat().st_mtime >= cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    remove_tree(entry)
                else:
                    entry.unlink()
            except FileNotFoundError:
                pass

    # per-project settings

    def save_project_settings(self, project_id: int | str, data: dict) -> None:
        """Store a project's settings (from /setup) as settings.json, readable by the owner only.

        Args:
            project_id: the project.
            data: JSON-able settings; may include a Label Studio access token.
        """
        pdir = self.project_dir(project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        write_atomic(pdir / "settings.json", json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)

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
