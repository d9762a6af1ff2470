"""Reading what a request carries, each malformed part a 400 that names the field."""
from __future__ import annotations

import json
from typing import Any, Callable

from flask import request

from ..exceptions import BadRequest
from ..ls_client import parse_project_id

# Larger ids are not Label Studio's (its ids are 64-bit) and would make over-long folder names.
MAX_PROJECT_ID = 2**63 - 1


def json_body() -> dict:
    """The request's JSON object.

    Raises:
        BadRequest: when the body is not JSON, not an object, or nested deeper than the parser's recursion limit.
    """
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw) if raw else None
    except RecursionError:
        raise BadRequest("the request body is JSON nested too deeply") from None
    except ValueError:  # UnicodeDecodeError included
        payload = None
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    return payload


def project_id(raw: Any, name: str = "project") -> int:
    """A project id from what Label Studio sends ("12.1763771234", 12, {"id": 12}), within range.

    Raises:
        BadRequest: naming `name`.
    """
    if isinstance(raw, str) and len(raw) > 60:  # int() of thousands of digits is itself an error
        raise BadRequest(f"{name!r}: cannot read a project id from {raw[:40]!r}...")
    try:
        pid = parse_project_id(raw)
    except BadRequest as e:
        raise BadRequest(f"{name!r}: {e}") from None
    if pid > MAX_PROJECT_ID:
        raise BadRequest(f"{name!r}: project id {str(pid)[:30]}... is out of range")
    return pid


def optional_project(raw: Any, name: str = "project") -> int | None:
    """`project_id`, or None when `raw` is absent or empty."""
    return None if raw in (None, "") else project_id(raw, name)


def text_field(payload: dict, *names: str) -> str:
    """The first of `names` that `payload` holds and is not empty, as a string ("" when none is).

    Raises:
        BadRequest: when that value is not a string.
    """
    for name in names:
        value = payload.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise BadRequest(f"{name!r} must be a string (a label config's XML), not {type(value).__name__}")
        return value
    return ""


def extra_params(raw: Any) -> dict:
    """A model's extra params from /setup: a JSON object, or a string holding one (Label Studio sends either)."""
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest("'extra_params' must be a JSON object") from None
    if not isinstance(raw, dict):
        raise BadRequest("'extra_params' must be a JSON object")
    return raw


def split_unreadable(tasks: list) -> tuple[list, dict[int, str]]:
    """The tasks an adapter can be given, and {position: error} for those it cannot.

    JSON may carry lone surrogates ("\\ud800"); Python decodes them into strings that no encoder, tokenizer or
    URL library accepts. Such a task fails alone instead of failing its whole batch.
    """
    readable, unreadable = [], {}
    for i, task in enumerate(tasks):
        try:
            json.dumps(task, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            task_id = task.get("id", "?") if isinstance(task, dict) else "?"
            unreadable[i] = f"task {task_id}: its data holds text that is not valid Unicode ({e.reason})"
        else:
            readable.append(task)
    return readable, unreadable


def merge(answered: list, unreadable: dict[int, str], failed: Callable[[str], Any]) -> list:
    """`answered` (one per readable task, in order) with `failed(error)` put back at the unreadable positions."""
    answers = iter(answered)
    return [failed(unreadable[i]) if i in unreadable else next(answers)
            for i in range(len(answered) + len(unreadable))]
