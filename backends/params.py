"""Checking the parameters a request or a project's extra params carry: numbers within a range, one of a set, a
yes/no switch.

Label Studio passes `params` with each /predict and the model's "extra params" (stored at /setup) as JSON that
nobody has checked. Every value that sizes work (an image size, a batch, a count) or steers a decision (a threshold)
is read through a `Number`, a `OneOf` or a `Flag`, so a bad one is a 400 that names the field and what is allowed, at /setup
and again where it is used (a value stored before it was checked must not turn into a 500 later):

    IMGSZ = Number("imgsz", 32, 4096, integer=True)
    ...
    imgsz = IMGSZ.read(params)            # None when absent, else an int in [32, 4096]
    batch = BATCH.read(params, default=8)

An adapter lists what it reads in `PARAMS` (a tuple of these), and /setup checks a project's extra params
against that list with `validate`.
"""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .exceptions import BadRequest

_INT = re.compile(r"[+-]?\d{1,18}")  # int() of a 5,000-digit string is itself an error (Python's digit limit)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclass(frozen=True)
class Number:
    """A number in [lo, hi].

    Args:
        name: the parameter's key, as the error names it.
        lo, hi: the allowed range, both ends included.
        integer: only whole numbers (an int, an integral float, or a string of digits: "12", not "1e3").
    """

    name: str
    lo: float
    hi: float
    integer: bool = False

    def parse(self, raw: Any) -> int | float:
        """`raw` as a number in range.

        Raises:
            BadRequest: naming the field and the range.
        """
        value = self._number(raw)
        if value is None or not self.lo <= value <= self.hi:
            kind = "an integer" if self.integer else "a number"
            shown = raw if not isinstance(raw, str) else raw[:40]
            raise BadRequest(f"{self.name!r} must be {kind} from {_fmt(self.lo)} to {_fmt(self.hi)}, "
                             f"got {shown!r}")
        return value

    def read(self, params: Mapping[str, Any] | None, default: int | float | None = None) -> int | float | None:
        """The parameter's value from `params`, or `default` when it is absent (None or "")."""
        raw = (params or {}).get(self.name)
        if raw is None or raw == "":
            return default
        return self.parse(raw)

    def _number(self, raw: Any) -> int | float | None:
        if isinstance(raw, bool):  # True is an int to Python, never a count or a threshold to a user
            return None
        if isinstance(raw, str):
            text = raw.strip()
            if self.integer:
                return int(text) if _INT.fullmatch(text) else None
            try:
                raw = float(text)
            except ValueError:
                return None
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and math.isfinite(raw):
            if self.integer:
                return int(raw) if raw.is_integer() else None
            return raw
        return None


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of strings (compared case-insensitively, answered as listed)."""

    name: str
    options: tuple[str, ...]

    def parse(self, raw: Any) -> str:
        """`raw` as one of the options.

        Raises:
            BadRequest: naming the field and the options.
        """
        if isinstance(raw, str):
            for option in self.options:
                if raw.strip().lower() == option.lower():
                    return option
        shown = raw if not isinstance(raw, str) else raw[:40]
        raise BadRequest(f"{self.name!r} must be one of {', '.join(self.options)}; got {shown!r}")

    def read(self, params: Mapping[str, Any] | None, default: str | None = None) -> str | None:
        """The parameter's value from `params`, or `default` when it is absent (None or "")."""
        raw = (params or {}).get(self.name)
        if raw is None or raw == "":
            return default
        return self.parse(raw)


@dataclass(frozen=True)
class Flag:
    """A yes/no switch: a JSON boolean, or the string "true" or "false" (Label Studio's extra params are typed);
    with `auto`, also the string "auto" (the component decides)."""

    name: str
    auto: bool = False

    def parse(self, raw: Any) -> bool | str:
        """`raw` as a bool (or "auto").

        Raises:
            BadRequest: naming the field.
        """
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        if self.auto and isinstance(raw, str) and raw.strip().lower() == "auto":
            return "auto"
        shown = raw if not isinstance(raw, str) else raw[:40]
        allowed = 'true, false or "auto"' if self.auto else "true or false"
        raise BadRequest(f"{self.name!r} must be {allowed}, got {shown!r}")

    def read(self, params: Mapping[str, Any] | None, default: bool | str | None = None) -> bool | str | None:
        """The parameter's value from `params`, or `default` when it is absent (None or "")."""
        raw = (params or {}).get(self.name)
        if raw is None or raw == "":
            return default
        return self.parse(raw)


Param = Number | OneOf | Flag


def validate(params: Mapping[str, Any] | None, specs: Iterable[Param], where: str = "") -> None:
    """Check every parameter of `specs` that `params` holds; parameters not listed pass unchecked.

    Args:
        where: what `params` is, put before the message (e.g. "extra_params").

    Raises:
        BadRequest: at the first bad value, naming it and what is allowed.
    """
    for spec in specs:
        try:
            spec.read(params)
        except BadRequest as e:
            if not where:
                raise
            raise BadRequest(f"{where}: {e}") from None


def allowed_weights_folder(name: Any, weights_dir: Any, patterns: Iterable[str], marker: str) -> bool:
    """`name` is a bare folder of `weights_dir` that one of `patterns` (ALLOWED_WEIGHTS) lists and that holds
    `marker` (e.g. config.json): the one way a project's extra params may point at other weights. Never a path."""
    return (isinstance(name, str) and bool(weights_dir) and "/" not in name and "\\" not in name
            and name not in ("", ".", "..") and any(fnmatch.fnmatch(name, p) for p in patterns)
            and (Path(weights_dir) / name / marker).is_file())


# The server's own: a project's extra params may say after how many annotation events to retrain.
RETRAIN_EVERY = Number("retrain_every", 1, 1_000_000, integer=True)
SERVER_PARAMS: tuple[Param, ...] = (RETRAIN_EVERY,)
