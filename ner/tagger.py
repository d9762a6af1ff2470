"""BIO tagging by logistic regression on per-token features (see `features`), saved as JSON + `.npz` (no pickle).

A linear head rather than spaCy's own NER training: with 25-200 annotated sentences it learns in a second on a
CPU, and spaCy's marginals among its features let it start from what the base pipeline knows (measured against
the spaCy mapping in bench/ner_bench.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .linear import LinearSoftmax, fit_softmax
from .spans import OUTSIDE

DEFAULT_C = 0.03  # CoNLL-2003, 100 sentences: 0.639 span F1, 0.643 at C=0.01, 0.635 at C=0.1 (bench/ner_bench.py)


class Tagger(LinearSoftmax):
    """Token tags from features: a standardiser and a multinomial logistic regression over BIO tags."""

    CONFIG_FILE, ARRAYS_FILE, CLASSES_KEY = "tagger.json", "tagger.npz", "tags"

    @property
    def tags(self) -> list[str]:
        return self.classes

    @property
    def labels(self) -> list[str]:
        """The entity labels it tags (those it saw in training) and is used for."""
        tagged = sorted({t[2:] for t in self.tags if t != OUTSIDE})
        return tagged if self.serve_labels is None else [lb for lb in tagged if lb in self.serve_labels]

    @classmethod
    def fit(cls, features: Sequence[np.ndarray], tags: Sequence[Sequence[str]], c: float = DEFAULT_C,
            weight: np.ndarray | None = None) -> Tagger:
        """Fit on each text's (n_tokens, d) features and its tags.

        Args:
            weight: per feature, how much it counts after standardising (a weight of 3 makes its coefficient 9
                times cheaper under the L2 penalty); None: all 1.

        Raises:
            ValueError: no token carries an entity tag.
        """
        x = np.vstack([f for f in features if len(f)]).astype(np.float64)
        y = np.array([t for doc in tags for t in doc])
        if len(x) != len(y):
            raise ValueError(f"{len(x)} token features but {len(y)} tags")
        classes = sorted(set(y))
        if classes == [OUTSIDE] or not classes:
            raise ValueError("no token is tagged as an entity")
        if len(classes) == 1:  # only entity tokens: nothing to weigh; a constant model
            mean, scale = x.mean(axis=0), np.ones(x.shape[1])
            return cls(classes, mean, scale, np.zeros((1, x.shape[1])), np.zeros(1))
        return cls(*fit_softmax(x, y, c, weight))

    def decode(self, probs: np.ndarray) -> list[str]:
        """The most probable tag sequence in which every I-X follows a B-X or I-X (Viterbi over `proba`'s
        output). CoNLL-2003, 100 annotated sentences, 600 tuning sentences outside the bench's pool and dev:
        0.631 span F1 against 0.601 for each token's most probable tag (whose stray I-X tags start spans)."""
        return [self.tags[j] for j in viterbi(np.log(np.clip(probs, 1e-12, 1.0)), self.tags)]


def viterbi(log_probs: np.ndarray, tags: Sequence[str]) -> list[int]:
    """Indices of the best tag per token under BIO's rule: I-X only after B-X or I-X (never first)."""
    n, k = log_probs.shape
    if not n:
        return []
    labels = [t[2:] if t != OUTSIDE else None for t in tags]
    inside = np.array([t.startswith("I-") for t in tags])
    allowed = np.ones((k, k), dtype=bool)  # [previous, current]
    for j in np.flatnonzero(inside):
        allowed[:, j] = [labels[i] == labels[j] for i in range(k)]
    transition = np.where(allowed, 0.0, -np.inf)
    score = log_probs[0] + np.where(inside, -np.inf, 0.0)
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        total = score[:, None] + transition
        back[t] = total.argmax(axis=0)
        score = total.max(axis=0) + log_probs[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]
