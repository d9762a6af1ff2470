"""Label Studio's API as the backends need it: the project id Label Studio sends, the annotations training reads,
and a client configured from `Settings` or from /setup. The client itself is `lsclient`, shared with scripts/;
here its failures become `LabelStudioUnavailable` (HTTP 502)."""
from __future__ import annotations

import random
import re

from lsclient import LabelStudioClient as _SharedClient
from lsclient import newest_annotation

from .base import LabeledTask
from .config import Settings
from .exceptions import BadRequest, LabelStudioUnavailable
from .logs import add_secrets

_PAGE_SIZE = 100
_PROJECT_RE = re.compile(r"^\s*(\d+)(?:\.\d+)?\s*$")


def parse_project_id(project: str | int | dict | None) -> int:
    """The numeric project id from what Label Studio sends.

    Args:
        project: "12.1763771234" (id and creation time, as sent to ML backends), "12", 12, or a webhook's
            project dict with an "id".

    Returns:
        The project id.
    """
    if isinstance(project, dict):
        project = project.get("id")
    # bool is an int subclass; True is not a project
    if isinstance(project, int) and not isinstance(project, bool) and project > 0:
        return project
    if isinstance(project, str):
        m = _PROJECT_RE.match(project)
        if m and int(m.group(1)) > 0:
            return int(m.group(1))
    raise BadRequest(f"cannot read a project id from {str(project)[:80]!r}")


def select_annotation(task: dict) -> LabeledTask | None:
    """The annotation training uses for `task`: the newest one that was not cancelled (skipped).

    Args:
        task: a task as Label Studio's API returns it, with "id", "data" and "annotations".

    Returns:
        A `LabeledTask`, or None when the task has no usable annotation.
    """
    newest = newest_annotation(task.get("annotations"))
    if newest is None:
        return None
    return LabeledTask(
        task_id=int(task["id"]),
        data=dict(task.get("data") or {}),
        result=list(newest.get("result") or []),
        annotation_id=newest.get("id"),
        updated_at=newest.get("updated_at") or newest.get("created_at"),
    )


class LabelStudioClient(_SharedClient):
    """The shared client, with every failure raised as `LabelStudioUnavailable` (without the key)."""

    error_type = LabelStudioUnavailable

    def get_label_config(self, project_id: int) -> str:
        """The project's labeling config (XML)."""
        with self.errors(f"reading project {project_id}"):
            project = self.sdk.projects.get(id=project_id)
        if not project.label_config:
            raise LabelStudioUnavailable(f"Label Studio returned no label config for project {project_id}")
        return project.label_config

    def labeled_tasks(self, project_id: int) -> list[LabeledTask]:
        """Every task of the project with a usable annotation (the newest non-cancelled one each).

        Cloud storage URIs are resolved by Label Studio (`resolve_uri`), so task data holds URLs the media
        fetcher can read.
        """
        return self.training_tasks(project_id)[0]

    def training_tasks(self, project_id: int, open_limit: int = 0) -> tuple[list[LabeledTask], list[dict]]:
        """`labeled_tasks`, and from the same listing up to `open_limit` tasks nobody has annotated yet ({"id",
        "data"}; a uniform sample, the same for the same project and tasks, when there are more).

        Tasks whose annotations were all cancelled (skipped) are neither: an annotator could not label them.
        """
        out: list[LabeledTask] = []
        open_tasks: list[dict] = []
        seen_open = 0
        sampler = random.Random(project_id)
        with self.errors(f"listing the tasks of project {project_id}"):
            pager = self.sdk.tasks.list(project=project_id, fields="all", resolve_uri=True, page_size=_PAGE_SIZE)
            for item in pager:
                task = {"id": getattr(item, "id", None), "data": getattr(item, "data", None),
                        "annotations": getattr(item, "annotations", None)}
                if task["id"] is None:
                    continue
                labeled = select_annotation(task)
                if labeled is not None:
                    out.append(labeled)
                elif not task["annotations"] and open_limit > 0:
                    seen_open += 1
                    _reservoir(open_tasks, {"id": int(task["id"]), "data": dict(task["data"] or {})}, seen_open,
                               open_limit, sampler)
        return out, open_tasks


def _reservoir(kept: list, item, seen: int, limit: int, rng: random.Random) -> None:
    """Algorithm R: after `seen` items, `kept` is a uniform sample of at most `limit` of them (memory stays at
    `limit` items however many tasks a project has)."""
    if len(kept) < limit:
        kept.append(item)
        return
    slot = rng.randrange(seen)
    if slot < limit:
        kept[slot] = item


def client_for(settings: Settings, url: str | None = None, api_key: str | None = None) -> LabelStudioClient:
    """A client for the Label Studio in `settings`, or the one /setup named.

    Args:
        settings: supplies LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY.
        url: Label Studio's address from /setup (`hostname`), overriding the settings when given.
        api_key: the key from /setup (`access_token`), overriding the settings when given.

    Returns:
        A `LabelStudioClient`.
    """
    url = (url or settings.label_studio_url or "").strip()
    api_key = (api_key or settings.api_key or "").strip()
    if not url or not api_key:
        missing = "LABEL_STUDIO_URL" if not url else "LABEL_STUDIO_API_KEY"
        raise LabelStudioUnavailable(
            f"{missing} is not set: the backend needs Label Studio's address and an API key to read tasks "
            "and media (set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or connect the model in Label Studio)")
    add_secrets([api_key])  # a key from /setup is a secret of this process's log too (training workers included)
    return LabelStudioClient(url, api_key)
