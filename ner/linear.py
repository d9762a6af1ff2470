"""A standardiser and a multinomial logistic regression, saved as JSON + `.npz` (no pickle): the model under both
the token tagger (`tagger.Tagger`) and the entity relabeler (`relabel.Relabeler`)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import ClassVar, Sequence, TypeVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

MAX_ITER = 500
Model = TypeVar("Model", bound="LinearSoftmax")


def fit_softmax(x: np.ndarray, y: np.ndarray, c: float, weight: np.ndarray | None = None) -> tuple:
    """(classes, mean, scale, coef, intercept) of a logistic regression on standardised `x`.

    Args:
        weight: per feature, how much it counts after standardising (a weight of 3 makes its coefficient 9 times
            cheaper under the L2 penalty); None: all 1.
    """
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    if weight is not None:
        scale = scale / np.asarray(weight, dtype=np.float64)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(C=c, max_iter=MAX_ITER).fit((x - mean) / scale, y)
    coef, intercept = lr.coef_, lr.intercept_
    if len(lr.classes_) == 2:  # binary LR keeps one row: the logit of the second class
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return list(lr.classes_), mean, scale, coef, intercept


class LinearSoftmax:
    """Class probabilities from features; subclasses name their files and the JSON key of their classes."""

    CONFIG_FILE: ClassVar[str]
    ARRAYS_FILE: ClassVar[str]
    CLASSES_KEY: ClassVar[str]

    def __init__(self, classes: Sequence[str], mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray, feature_labels: Sequence[str] = ()):
        self.classes = list(classes)
        self.feature_labels = list(feature_labels)  # the project labels its features were built with
        self.serve_labels: list[str] | None = None  # the labels it is used for (None: all it gives); see ner.train
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept

    def proba(self, features: np.ndarray) -> np.ndarray:
        """(n_rows, n_classes) probabilities, columns in `self.classes` order."""
        if not len(features):
            return np.zeros((0, len(self.classes)))
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / self.ARRAYS_FILE, mean=self.mean, scale=self.scale, coef=self.coef,
                 intercept=self.intercept)
        config = {self.CLASSES_KEY: self.classes, "feature_labels": self.feature_labels,
                  "serve_labels": self.serve_labels}
        (directory / self.CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls: type[Model], directory: str | Path) -> Model:
        directory = Path(directory)
        config = json.loads((directory / cls.CONFIG_FILE).read_text())
        classes = config[cls.CLASSES_KEY]
        with np.load(directory / cls.ARRAYS_FILE, allow_pickle=False) as a:
            out = cls(classes, a["mean"], a["scale"], a["coef"], a["intercept"], config.get("feature_labels", ()))
        out.serve_labels = config.get("serve_labels")
        if out.coef.shape != (len(classes), len(out.mean)):
            raise ValueError(f"{directory}: the {cls.__name__}'s arrays do not match its {len(classes)} classes")
        return out
