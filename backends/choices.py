"""Label Studio's choice controls, `<Choices>` and `<Taxonomy>`: the classes a config offers (a Taxonomy's leaf
paths, joined by " / "), the classes an annotation chose, and the one writer of their result items, for text and
image classification alike."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

from selection import combine

from .exceptions import UnsupportedConfig
from .labels import Control

PATH_SEP = " / "  # joins a Taxonomy path into one class name
TAGS = ("choices", "taxonomy")


@lru_cache(maxsize=64)
def taxonomy_paths(label_config: str, name: str) -> tuple[tuple[str, ...], ...]:
    """Every leaf path of the Taxonomy called `name`, root first."""
    root = ET.fromstring(label_config)
    node = next((t for t in root.iter("Taxonomy") if t.get("name") == name), None)
    paths: list[tuple[str, ...]] = []

    def walk(elem: ET.Element, prefix: tuple[str, ...]) -> None:
        for child in elem.findall("Choice"):
            path = prefix + (child.get("value") or child.get("alias") or "",)
            if child.find("Choice") is None:
                paths.append(path)
            else:
                walk(child, path)

    if node is not None:
        walk(node, ())
    return tuple(paths)


def as_classes(control: Control, label_config: str) -> Control:
    """A Taxonomy as a single-choice control whose labels are its leaf paths ("A / B"), each standing for its
    leaf's name (`predicted_values`); a Choices control as it is."""
    if control.tag != "taxonomy":
        return control
    paths = taxonomy_paths(label_config, control.name)
    labels = [PATH_SEP.join(p) for p in paths]
    return replace(control, labels=labels, attrs={**control.attrs, "choice": "single"},
                   label_attrs={lb: {"predicted_values": p[-1]} for lb, p in zip(labels, paths)})


def check_classes(control: Control) -> None:
    """Raise `UnsupportedConfig` for a control (as `as_classes` gives it) without classes."""
    if not control.labels:
        raise UnsupportedConfig(f"<{'Taxonomy' if control.tag == 'taxonomy' else 'Choices'} name={control.name!r}> "
                                "has no <Choice> entries")


def answer(control: Control, item: dict) -> list[str] | None:
    """The classes an annotation result item chose for `control`, or None when it is not for this control."""
    if item.get("from_name") != control.name:
        return None
    value = item.get("value") or {}
    if control.tag == "taxonomy":
        return [PATH_SEP.join(p) for p in value.get("taxonomy") or [] if p][:1]
    return list(value.get("choices") or [])


def known_answer(control: Control, result: list[dict], classes: Sequence[str],
                 unknown: dict[str, int]) -> list[str] | None:
    """The classes an annotation's result chose for `control` (its last item for the control counts), or None
    when it chose none, or one that is not among `classes`: the config no longer has it, so the example says
    nothing of the current classes (such classes are counted in `unknown`)."""
    chosen = None
    for item in result:
        found = answer(control, item)
        if found is not None:
            chosen = found
    if not chosen:
        return None
    missing = [lb for lb in chosen if lb not in classes]
    for lb in missing:
        unknown[lb] = unknown.get(lb, 0) + 1
    return None if missing else chosen


def task_score(confidences: Sequence[float]) -> float | None:
    """A task's score from its controls' confidences (`selection.combine`); None without any."""
    return float(combine([[c] for c in confidences])[0]) if confidences else None


class ChoicesWriter:
    """Writes a prediction of one `<Choices>` or `<Taxonomy>` control as its result item."""

    def __init__(self, control: Control):
        self.control = control

    @classmethod
    def is_control_matched(cls, control: Control) -> bool:
        return control.tag in TAGS

    def item(self, chosen: Sequence[str], score: float, ranked: Sequence[tuple[str, float]] | None = None) -> dict:
        """The result item choosing `chosen` (class names; a Taxonomy's as joined paths) with the prediction's
        `score`; `ranked`, the k best (class, probability), goes into `value.top_k` as [{"label", "score"}]
        (Label Studio keeps extra keys of a value and its API returns them)."""
        c = self.control
        if c.tag == "taxonomy":
            value: dict = {"taxonomy": [label.split(PATH_SEP) for label in chosen]}
        else:
            value = {"choices": list(chosen)}
        if ranked is not None:
            value["top_k"] = [{"label": label, "score": s} for label, s in ranked]
        return {"from_name": c.name, "to_name": c.to_name, "type": c.tag, "value": value, "score": float(score)}
