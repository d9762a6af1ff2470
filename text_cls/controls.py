"""A choice control as the classifier sees it (`ControlSpec`), and the answers given for it as training targets."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score


@dataclass
class ControlSpec:
    """One Label Studio choice control.

    Attributes:
        name: The control's name (key of targets and predictions).
        labels: Its choices, in the order probabilities are returned.
        multi: Several choices allowed (independent probabilities) or exactly one (rows sum to 1).
        descriptions: Label -> extra phrases or synonyms for zero-shot; the label name is always used as well.
    """

    name: str
    labels: list[str]
    multi: bool = False
    descriptions: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = [str(label) for label in self.labels]
        if not self.labels:
            raise ValueError(f"control {self.name!r} has no labels")
        duplicates = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"control {self.name!r} repeats labels {duplicates}")
        unknown = sorted(set(self.descriptions) - set(self.labels))
        if unknown:
            raise ValueError(f"control {self.name!r} has descriptions for unknown labels {unknown}")
        # A bare string is one phrase, not a list of characters.
        self.descriptions = {
            label: [phrases] if isinstance(phrases, str) else [str(p) for p in phrases]
            for label, phrases in self.descriptions.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlSpec:
        """Inverse of `dataclasses.asdict`."""
        return cls(
            data["name"], list(data["labels"]), bool(data.get("multi", False)), dict(data.get("descriptions") or {})
        )


def answer_targets(
    controls: Sequence[ControlSpec], texts: list[str], targets: Mapping[str, Sequence[list[str] | None]]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per control: indices of the texts with an answer, and their targets (indices, or 0/1 rows if multi).

    Raises:
        ValueError: targets for unknown controls, unknown labels, or a list of answers of the wrong length.
    """
    known = {c.name for c in controls}
    unknown_controls = sorted(set(targets) - known)
    if unknown_controls:
        raise ValueError(f"targets for unknown controls {unknown_controls}; known: {sorted(known)}")
    problems = []
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for spec in controls:
        answers = targets.get(spec.name)
        if answers is None:
            answers = [None] * len(texts)
        if isinstance(answers, str) or len(answers) != len(texts):
            raise ValueError(f"control {spec.name!r}: expected a list of {len(texts)} answers")
        # A bare label is accepted for a one-label answer.
        answers = [[answer] if isinstance(answer, str) else answer for answer in answers]
        unknown = sorted({str(label) for answer in answers if answer for label in answer} - set(spec.labels))
        if unknown:
            problems.append(f"control {spec.name!r}: unknown labels {unknown} (known: {spec.labels})")
            continue
        out[spec.name] = _encode(spec, answers)
    if problems:
        raise ValueError("; ".join(problems))
    return out


def _encode(spec: ControlSpec, answers: list[list[str] | None]) -> tuple[np.ndarray, np.ndarray]:
    """The rows that answer, and their targets; for single choice an empty answer is none and only the first label
    counts."""
    index = {label: i for i, label in enumerate(spec.labels)}
    rows = []
    ys: list[Any] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        if spec.multi:
            row = np.zeros(len(spec.labels), dtype=np.int64)
            row[[index[label] for label in answer]] = 1
            ys.append(row)
        elif answer:
            ys.append(index[answer[0]])
        else:
            continue
        rows.append(i)
    if spec.multi:
        y = np.array(ys, dtype=np.int64).reshape(len(rows), len(spec.labels))
    else:
        y = np.array(ys, dtype=np.int64)
    return np.array(rows, dtype=np.int64), y


def has_enough(spec: ControlSpec, y: np.ndarray, min_examples: int, min_per_class: int) -> bool:
    """Enough data for a head: min_examples answers and two classes with min_per_class examples each.

    For multi choice the two classes are a label's presence and absence: some label must be chosen at least
    min_per_class times and left out at least min_per_class times.
    """
    n, need = len(y), int(min_per_class)
    if n == 0 or n < int(min_examples):
        return False
    if spec.multi:
        positives = y.sum(axis=0)
        return bool(((positives >= need) & (n - positives >= need)).any())
    return int((np.bincount(y, minlength=len(spec.labels)) >= need).sum()) >= 2


def class_counts(spec: ControlSpec, y: np.ndarray) -> dict[str, int]:
    """Label -> how often the answers chose it, for the labels chosen at all."""
    if len(y) == 0:
        return {}
    counts = y.sum(axis=0) if spec.multi else np.bincount(y, minlength=len(spec.labels))
    return {label: int(c) for label, c in zip(spec.labels, counts) if c > 0}


def accuracy(spec: ControlSpec, y: np.ndarray, logits: np.ndarray) -> float:
    """Share of answers the logits get right (for multi choice: every label of the answer right)."""
    if spec.multi:
        return float(((logits >= 0) == (y > 0)).all(axis=1).mean())
    return float(accuracy_score(y, logits.argmax(axis=1)))


def choose(spec: ControlSpec, proba: np.ndarray, threshold: float = 0.5) -> list[str]:
    """The labels a prediction chooses from one probability row: the most probable one, or for multi choice every
    label at or above `threshold` (at least the most probable one)."""
    if spec.multi:
        return [spec.labels[j] for j in np.flatnonzero(proba >= threshold)] or [spec.labels[int(proba.argmax())]]
    return [spec.labels[int(proba.argmax())]]
