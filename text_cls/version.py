"""A trained version of a project's text classification: one `TextClassifier` per text field (the controls that
label the same text share its encoder), in `field-<key>` folders, and the training of a field with the guard's
verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .classifier import TextClassifier
from .controls import ControlSpec
from .encoder import Encoder

FIELD_PREFIX = "field-"


@dataclass
class TextModel:
    """What a trained version holds: text field -> its classifier."""

    classifiers: dict[str, TextClassifier] = field(default_factory=dict)

    @classmethod
    def load(cls, version_dir: str | Path, encoder: Encoder) -> TextModel | None:
        """The classifiers saved in `version_dir` (None when it holds none), fields not fine-tuned on `encoder`."""
        folders = sorted(p for p in Path(version_dir).iterdir() if p.is_dir() and p.name.startswith(FIELD_PREFIX))
        if not folders:
            return None
        return cls({p.name[len(FIELD_PREFIX):]: TextClassifier.load(p, encoder) for p in folders})

    def trained_for(self, key: str, spec: ControlSpec) -> TextClassifier | None:
        """The field's classifier when it has a head for a control like `spec` (same name and labels)."""
        trained = self.classifiers.get(key)
        if trained is None:
            return None
        own = next((s for s in trained.controls if s.name == spec.name), None)
        if own is not None and own.labels == spec.labels and trained.mode(spec.name) == "trained":
            return trained
        return None


@dataclass
class FieldFit:
    """One field's training: its metrics per control, why it is worse than the served version (empty: it is not),
    and whether any control got a head (then the classifier is saved)."""

    metrics: dict[str, Any]
    verdicts: list[str]
    trained: bool


def train_field(encoder: Encoder, specs: list[ControlSpec], texts: list[str],
                targets: dict[str, list[list[str] | None]], params: dict, served: TextClassifier | None,
                out_dir: Path, key: str, unlabeled: list[str] | tuple = ()) -> FieldFit:
    """Fit the field's controls (see `TextClassifier.fit`; a fine-tune self-trains on `unlabeled`, the field's open
    texts), judged against `served`, and save the classifier into `out_dir/field-<key>` when a control has a head.

    Raises:
        ValueError: bad params, or targets the controls do not know.
    """
    clf = TextClassifier(encoder, specs, params)
    metrics = clf.fit(texts, targets, params, served=served, unlabeled=unlabeled)
    verdicts = [m["guard"]["reason"] for m in metrics.values() if (m.get("guard") or {}).get("worse")]
    trained = any(clf.mode(s.name) == "trained" for s in specs)
    if trained:
        clf.save(Path(out_dir) / f"{FIELD_PREFIX}{key}")
    return FieldFit(metrics, verdicts, trained)
