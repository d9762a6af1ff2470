"""Label Studio's API as the backends need it, through label-studio-sdk.

The SDK handles both kinds of API key: a legacy token (`Authorization: Token ...`) and a personal access token
(a JWT refresh token it exchanges for short-lived access tokens, `Authorization: Bearer ...`).
"""
from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import Any, Iterator

import httpx
import jwt
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from .base import LabeledTask
from .config import Settings
from .exceptions import BadRequest, LabelStudioUnavailable

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


def _sort_key(annotation: dict) -> tuple:
    def when(value: Any) -> float:
        if not value:
            return float("-inf")
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return float("-inf")

    ann_id = annotation.get("id")
    return (when(annotation.get("updated_at")), when(annotation.get("created_at")),
            ann_id if isinstance(ann_id, int) else -1)


def select_annotation(task: dict) -> LabeledTask | None:
    """The annotation training uses for `task`: the newest one that was not cancelled (skipped).

    Args:
        task: a task as Label Studio's API returns it, with "id", "data" and "annotations".

    Returns:
        A `LabeledTask`, or None when the task has no usable annotation.
    """
    candidates = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not candidates:
        return None
    newest = max(candidates, key=_sort_key)
    return LabeledTask(
        task_id=int(task["id"]),
        data=dict(task.get("data") or {}),
        result=list(newest.get("result") or []),
        annotation_id=newest.get("id"),
        updated_at=newest.get("updated_at") or newest.get("created_at"),
    )


class LabelStudioClient:
    """A thin wrapper over the SDK that turns every failure into `LabelStudioUnavailable` without the key."""

    def __init__(self, url: str, api_key: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self._api_key = api_key
        with self._errors("connecting"):
            # The trailing slash keeps a path prefix (https://host/ls/) when the SDK urljoins the token refresh
            # endpoint; its other requests strip it again.
            self._sdk = LabelStudio(base_url=self.url + "/", api_key=api_key, timeout=timeout)

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r})"

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for raw downloads from Label Studio (refreshes a PAT's access token).

        Returns:
            {"Authorization": "Token ..."} or {"Authorization": "Bearer ..."}.
        """
        with self._errors("refreshing the access token"):
            headers = self._sdk._client_wrapper.get_headers()
        return {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")}

    def check(self) -> None:
        """Raise `LabelStudioUnavailable` if Label Studio is unreachable or refuses the key."""
        with self._errors("checking the connection"):
            self._sdk.projects.list(page_size=1)

    def get_label_config(self, project_id: int) -> str:
        """The project's labeling config (XML)."""
        with self._errors(f"reading project {project_id}"):
            project = self._sdk.projects.get(id=project_id)
        if not project.label_config:
            raise LabelStudioUnavailable(f"Label Studio returned no label config for project {project_id}")
        return project.label_config

    def labeled_tasks(self, project_id: int) -> list[LabeledTask]:
        """Every task of the project with a usable annotation (the newest non-cancelled one each).

        Cloud storage URIs are resolved by Label Studio (`resolve_uri`), so task data holds URLs the media
        fetcher can read.
        """
        out: list[LabeledTask] = []
        with self._errors(f"listing the tasks of project {project_id}"):
            pager = self._sdk.tasks.list(project=project_id, fields="all", resolve_uri=True, page_size=_PAGE_SIZE)
            for item in pager:
                task = {"id": getattr(item, "id", None), "data": getattr(item, "data", None),
                        "annotations": getattr(item, "annotations", None)}
                if task["id"] is None:
                    continue
                labeled = select_annotation(task)
                if labeled is not None:
                    out.append(labeled)
        return out

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except ApiError as e:
            detail = e.body.get("detail", "") if isinstance(e.body, dict) else (e.body or "")
            detail = f": {self._redact(str(detail))[:200]}" if detail else ""
            if e.status_code in (401, 403):
                raise LabelStudioUnavailable(
                    f"Label Studio refused the API key ({e.status_code}) while {doing}{detail}") from None
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} answered {e.status_code} while {doing}{detail}") from None
        except httpx.TimeoutException:
            raise LabelStudioUnavailable(f"cannot reach Label Studio at {self.url}: timed out while {doing}") from None
        except httpx.HTTPError as e:
            reason = self._redact(str(e))[:200] or type(e).__name__
            raise LabelStudioUnavailable(f"cannot reach Label Studio at {self.url}: {reason}") from None
        except jwt.PyJWTError:
            raise LabelStudioUnavailable("Label Studio API key looks like a JWT but cannot be read") from None
        except ValueError:
            # json decoding: something answered that is not Label Studio's API
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} gave an unreadable answer while {doing} (is the URL right?)") from None


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
    if "://" not in url:
        url = "http://" + url
    return LabelStudioClient(url, api_key)
