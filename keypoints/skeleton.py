"""A learned skeleton's layout: its keypoint labels in the config's order and which point a horizontal flip turns
each one into (Ultralytics' `flip_idx`), read from left/right in the labels' names."""
from __future__ import annotations

import re
from collections.abc import Sequence

_SIDES = {"left": "right", "right": "left", "l": "r", "r": "l"}


def mirrored(name: str) -> str | None:
    """The name with left and right swapped ("left_eye" -> "right_eye", "L hand" -> "R hand"), or None when it
    names no side. Whole words only, so "bright" stays as it is."""
    parts = re.split(r"([^A-Za-z]+)", name)
    swapped, changed = [], False
    for part in parts:
        other = _SIDES.get(part.lower())
        if other is None:
            swapped.append(part)
            continue
        changed = True
        swapped.append(other.upper() if part.isupper() else other.capitalize() if part[:1].isupper() else other)
    if not changed:  # camelCase: "leftEye" -> "rightEye"
        m = re.match(r"^(left|right|Left|Right)(?=[A-Z_\d]|$)(.*)$", name)
        if m is None:
            return None
        side = m.group(1)
        other = _SIDES[side.lower()]
        return (other.capitalize() if side[0].isupper() else other) + m.group(2)
    return "".join(swapped)


def flip_index(labels: Sequence[str]) -> list[int]:
    """For each label, the index of its mirror image among `labels` (itself when it has none)."""
    index = {lb: i for i, lb in enumerate(labels)}
    by_lower = {lb.lower(): i for i, lb in enumerate(labels)}
    out = []
    for i, lb in enumerate(labels):
        other = mirrored(lb)
        j = index.get(other) if other is not None else None
        if j is None and other is not None:
            j = by_lower.get(other.lower())
        out.append(i if j is None else j)
    # a flip must be its own inverse; anything else (two labels claiming one mirror) flips nothing
    return out if all(out[out[i]] == i for i in range(len(out))) else list(range(len(labels)))
