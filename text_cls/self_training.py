"""Self-training: the open tasks the fine-tuned model is surest of join the next fine-tune with its choices.

After the transformer is fine-tuned on the answers, the served model (heads fit on the tuned embeddings) labels the
open texts; for each single-choice control, the most confident of them per label the answers use (balanced, at most
`self_training_multiple` per answer and `self_training_max` in all) are added to the answers, and the transformer is
fine-tuned again from its pre-trained weights on both. Only the transformer learns from these pseudo-labels: the
heads, centroids, cross-validation and the guard use the annotators' answers alone. Labels no answer uses get no
pseudo-labels (they keep zero-shot's evidence, as in `finetune`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .controls import ControlSpec

if TYPE_CHECKING:
    from .classifier import TextClassifier


def wanted(params: Mapping[str, Any], unlabeled: Sequence[str]) -> bool:
    """Whether a fine-tune should self-train: "auto" and True do when there are open texts to learn from."""
    return bool(params["self_training"]) and len(unlabeled) > 0 and int(params["self_training_max"]) > 0


def pseudo_labels(teacher: TextClassifier, unlabeled: Sequence[str], data: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  eligible: Mapping[str, bool], params: Mapping[str, Any]) -> tuple[list[int], dict[str, np.ndarray]]:
    """The open texts to add and each single-choice control's label index for them.

    Args:
        teacher: The classifier trained on the answers (its heads on the fine-tuned embeddings).
        unlabeled: The open texts.
        data: `controls.answer_targets` of the answers; eligible: the controls that get a head.
        params: self_training_multiple and self_training_max.

    Returns:
        (indices into `unlabeled`, sorted; {control: (len(indices),) label index, -1 where another control chose the
        text}).
    """
    singles = [spec for spec in teacher.controls if not spec.multi and eligible.get(spec.name)
               and spec.name in teacher.heads]
    if not singles:
        return [], {}
    probas = teacher.predict_proba(list(unlabeled))
    chosen: dict[str, dict[int, int]] = {}
    for spec in singles:
        _, y = data[spec.name]
        budget = min(int(float(params["self_training_multiple"]) * len(y)), int(params["self_training_max"]))
        chosen[spec.name] = most_confident(probas[spec.name], np.unique(y), budget // max(1, len(singles)))
    rows = sorted({i for picked in chosen.values() for i in picked})
    return rows, {name: np.array([picked.get(i, -1) for i in rows]) for name, picked in chosen.items()}


def most_confident(proba: np.ndarray, labels: np.ndarray, budget: int) -> dict[int, int]:
    """Up to budget / len(labels) rows per label of `labels` (those the answers use) among the rows that choose
    it, the most confident first: {row: label}. Balanced so that the commonest label does not crowd out the rest."""
    choice = proba.argmax(axis=1)
    confidence = proba.max(axis=1)
    per_label = budget // max(1, len(labels))
    out: dict[int, int] = {}
    for label in labels:
        rows = np.flatnonzero(choice == label)
        for row in rows[np.argsort(-confidence[rows], kind="stable")][:per_label]:
            out[int(row)] = int(label)
    return out


def summary(spec: ControlSpec, labels: np.ndarray) -> dict[str, int]:
    """How many pseudo-labels of each label a control got."""
    counts = np.bincount(labels[labels >= 0], minlength=len(spec.labels))
    return {label: int(c) for label, c in zip(spec.labels, counts) if c}
