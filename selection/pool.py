"""`Pool`: everything a selection strategy may look at, for the open (unlabeled) items and the labeled ones.

Strategies never see a model: they get what a model said (confidences, class probabilities, predicted classes)
and where the items lie (embeddings). A field a caller cannot fill stays None; a strategy that needs it says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .uncertainty import Measure, margin


def _array(value, name: str, ndim: int, dtype=np.float64) -> np.ndarray | None:
    if value is None:
        return None
    a = np.asarray(value, dtype=dtype)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    return a


@dataclass(frozen=True)
class Pool:
    """The n open items a batch is picked from, and what is known about the m labeled ones.

    Attributes:
        confidence: (n,) confidences in [0, 1], 1 = certain; None while there is no model to ask.
        probs: (n, k) class probabilities (only BADGE needs them).
        predicted: (n,) predicted class index of each open item.
        embeddings: (n, d) vectors of the open items.
        labeled_embeddings: (m, d) vectors of the labeled items: covered already.
        labeled_classes: (m,) class index of each labeled item.
        n_labeled: how many items are labeled, when their vectors are not given.
        multi_label: columns of `probs` are independent labels.
    """

    confidence: np.ndarray | None = None
    probs: np.ndarray | None = None
    predicted: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    labeled_embeddings: np.ndarray | None = None
    labeled_classes: np.ndarray | None = None
    n_labeled: int | None = None
    multi_label: bool = False

    def __post_init__(self) -> None:
        fields = {"confidence": (1, np.float64), "probs": (2, np.float64), "predicted": (1, np.int64),
                  "embeddings": (2, np.float64), "labeled_embeddings": (2, np.float64),
                  "labeled_classes": (1, np.int64)}
        for name, (ndim, dtype) in fields.items():
            object.__setattr__(self, name, _array(getattr(self, name), name, ndim, dtype))
        sizes = {name: len(getattr(self, name)) for name in ("confidence", "probs", "predicted", "embeddings")
                 if getattr(self, name) is not None}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"the open items' fields disagree on their number: {sizes}")
        if self.labeled_embeddings is not None and self.labeled_classes is not None \
                and len(self.labeled_embeddings) != len(self.labeled_classes):
            raise ValueError("labeled_embeddings and labeled_classes disagree on the number of labeled items")
        if self.embeddings is not None and self.labeled_embeddings is not None and len(self.labeled_embeddings) \
                and self.embeddings.shape[1] != self.labeled_embeddings.shape[1]:
            raise ValueError("embeddings and labeled_embeddings have different widths")

    @classmethod
    def from_probs(cls, probs, measure: Measure = margin, multi_label: bool = False, **fields) -> Pool:
        """A pool whose confidences come from `measure` over `probs`, predicted classes from their argmax."""
        p = np.asarray(probs, dtype=np.float64)
        predicted = None if multi_label or p.ndim != 2 or p.shape[1] == 0 else p.argmax(axis=1)
        return cls(confidence=measure(p, multi_label=multi_label), probs=p, predicted=predicted,
                   multi_label=multi_label, **fields)

    @property
    def size(self) -> int:
        """n, the number of open items."""
        for a in (self.confidence, self.probs, self.predicted, self.embeddings):
            if a is not None:
                return len(a)
        return 0

    @property
    def labeled(self) -> int:
        """m, the number of labeled items."""
        if self.n_labeled is not None:
            return self.n_labeled
        for a in (self.labeled_embeddings, self.labeled_classes):
            if a is not None:
                return len(a)
        return 0

    def n_classes(self) -> int:
        """k, from the probabilities when known, else from the largest class index seen."""
        if self.probs is not None:
            return self.probs.shape[1]
        seen = [a.max() + 1 for a in (self.predicted, self.labeled_classes) if a is not None and len(a)]
        return int(max(seen)) if seen else 0
