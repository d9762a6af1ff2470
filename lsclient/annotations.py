"""Which annotation of a task counts: the newest one that was not cancelled (skipped).

Training (backends/) and export (scripts/) both use this rule, so a model learns exactly what is exported.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any


def _when(value: Any) -> float:
    """A timestamp as seconds; missing or unreadable ones sort first."""
    if not value:
        return float("-inf")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("-inf")


def _newness(annotation: dict) -> tuple:
    # times compare as times ("...00.5Z" is later than "...00Z", which text order gets wrong); ties fall back to
    # the creation time, then to the id
    ann_id = annotation.get("id")
    return (_when(annotation.get("updated_at")), _when(annotation.get("created_at")),
            ann_id if isinstance(ann_id, int) else -1)


def newest_annotation(annotations: list[Any] | None) -> dict | None:
    """The newest annotation that was not cancelled.

    Args:
        annotations: a task's annotations as Label Studio's API returns them (dicts with "id", "updated_at",
            "created_at", "was_cancelled", "result"); anything else in the list is ignored.

    Returns:
        That annotation, or None when there is none.
    """
    candidates = [a for a in annotations or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    return max(candidates, key=_newness) if candidates else None
