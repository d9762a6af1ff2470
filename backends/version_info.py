"""What one trained version is: its name ("v3"), and the record of it in its meta.json."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import VersionError

VERSION_NAME = re.compile(r"v([1-9][0-9]{0,8})")


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
    m = VERSION_NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise VersionError(f"not a version name: {name!r} (expected v1, v2, ...)")
    return int(m.group(1))


def version_numbers(project_dir: Path) -> list[int]:
    """The numbers of the version folders in a project folder, highest first ([] when it does not exist)."""
    if not project_dir.is_dir():
        return []
    numbers = []
    for entry in project_dir.iterdir():
        m = VERSION_NAME.fullmatch(entry.name)
        if m and entry.is_dir():
            numbers.append(int(m.group(1)))
    return sorted(numbers, reverse=True)


def read_version(version_dir: Path, model_version: str) -> VersionInfo:
    """The VersionInfo recorded in a version folder's meta.json.

    Args:
        version_dir: the folder ("…/v3").
        model_version: the name Label Studio knows it by ("text_cls-v3").

    Raises:
        VersionError: no such version, or its meta.json is unreadable.
    """
    try:
        meta = json.loads((version_dir / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VersionError(f"version {version_dir.name} does not exist") from None
    except (OSError, ValueError) as e:
        raise VersionError(f"version {version_dir.name} has an unreadable meta.json: {e}") from None
    return VersionInfo(
        name=version_dir.name, model_version=model_version, path=version_dir,
        status=str(meta.get("status", "published")), created=str(meta.get("created", "")),
        parent=meta.get("parent"), n_examples=meta.get("n_examples"),
        metrics=dict(meta.get("metrics") or {}), reason=str(meta.get("reason") or ""))
