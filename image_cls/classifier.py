"""`ImageClassifier`: a control's classes predicted from image features on top of the base scores, its training
on submitted labels and the guard that decides whether a trained one may be served.

The head is text_cls's (`text_cls.heads`: logistic regression whose logits add the base model's logits with a
weight chosen by cross-validation, 0 = plain logistic regression); here the "zero-shot" prior is the detector's
per-class score (`base.base_logits`). Classes without labels keep their base score: single choice gives them their
share of the base distribution, multi choice their own base score.

The guard compares, on the same submitted labels:
- the candidate's out-of-fold predictions (each example predicted by a head that did not see it),
- the base predictions (a class the detector did not find is no prediction, i.e. wrong),
- the served version on the examples it was not trained on (its own training examples would flatter it),
and publishes only when the candidate is not worse than either by more than `tolerance`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from text_cls.heads import LinearHead, fit_head, folds, select

from .base import base_logits

FILE_JSON, FILE_NPZ = "image_classifier.json", "image_classifier.npz"


class NotEnoughLabels(ValueError):
    """Too few labels to train and validate a head."""


@dataclass
class ImageClassifier:
    """A control's classes; `head` is None for the base predictions only."""

    classes: list[str]
    multi: bool
    head: LinearHead | None = None
    trained_ids: list[str] = field(default_factory=list)  # the examples the head was trained on
    metrics: dict[str, Any] = field(default_factory=dict)
    imgsz: int | None = None  # the feature size the head was trained at: its features must be taken at the same

    def proba(self, features: np.ndarray | None, scores: np.ndarray) -> np.ndarray:
        """(n, n_classes) probabilities; `features` may be None when there is no head."""
        if self.head is None:
            return np.asarray(scores, dtype=np.float64).copy()
        return self.head.proba(np.asarray(features, dtype=np.float64), base_logits(scores, self.multi))

    def allowed(self, scores: np.ndarray) -> np.ndarray:
        """(n, n_classes) mask of the classes a prediction may name: those the head learned, and those the base
        model found in the image; never a class nothing knows."""
        mask = np.asarray(scores) > 0
        if self.head is not None:
            mask[:, self.head.classes] = True
        return mask

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"classes": self.classes, "multi": self.multi, "trained_ids": self.trained_ids,
                "metrics": self.metrics, "has_head": self.head is not None,
                "imgsz": self.imgsz}
        (folder / FILE_JSON).write_text(json.dumps(meta, indent=1))
        if self.head is not None:
            np.savez(folder / FILE_NPZ, classes=self.head.classes, coef=self.head.coef,
                     intercept=self.head.intercept, prior_scale=self.head.prior_scale)

    @classmethod
    def load(cls, folder: Path) -> "ImageClassifier":
        """Raises OSError or ValueError for a folder that holds no classifier."""
        meta = json.loads((Path(folder) / FILE_JSON).read_text())
        head = None
        if meta.get("has_head"):
            with np.load(Path(folder) / FILE_NPZ, allow_pickle=False) as z:
                head = LinearHead(bool(meta["multi"]), z["classes"], z["coef"], z["intercept"], z["prior_scale"])
        return cls(list(meta["classes"]), bool(meta["multi"]), head, list(meta.get("trained_ids", [])),
                   meta.get("metrics", {}), meta.get("imgsz"))


def correct(proba: np.ndarray, allowed: np.ndarray, targets: np.ndarray, multi: bool,
            threshold: float = 0.5) -> np.ndarray:
    """Per example: 1/0 for single choice (the best allowed class is the label; no allowed class is wrong), the
    Jaccard index of the chosen and the true classes for multi choice."""
    masked = np.where(allowed, proba, -np.inf)
    has = allowed.any(axis=1)
    if not multi:
        return (has & (masked.argmax(axis=1) == targets)).astype(np.float64)
    chosen = np.where(allowed, proba >= threshold, False)
    best = masked.argmax(axis=1)
    chosen[np.arange(len(chosen)), best] |= has
    truth = targets > 0
    union = (chosen | truth).sum(axis=1)
    return np.where(union > 0, (chosen & truth).sum(axis=1) / np.maximum(union, 1), 1.0)


def top_k_accuracy(proba: np.ndarray, allowed: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of single-choice examples whose label is among the k best allowed classes."""
    masked = np.where(allowed, proba, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    hit = [(t in row) and allowed[i, t] for i, (t, row) in enumerate(zip(targets, order))]
    return float(np.mean(hit)) if len(hit) else 0.0


@dataclass
class FitReport:
    """A trained candidate, the numbers the guard compared, and its decision."""

    classifier: ImageClassifier
    metrics: dict[str, Any]
    publish: bool
    reason: str = ""


def encode_targets(classes: list[str], chosen: list[list[str]], multi: bool) -> np.ndarray:
    """Chosen class names as targets: (n,) indices of the first choice, or (n, n_classes) 0/1 for multi choice."""
    index = {c: j for j, c in enumerate(classes)}
    if not multi:
        return np.array([index[c[0]] for c in chosen], dtype=np.int64)
    y = np.zeros((len(chosen), len(classes)), dtype=np.int64)
    for row, names in enumerate(chosen):
        y[row, [index[c] for c in names]] = 1
    return y


def _check_enough(targets: np.ndarray, multi: bool, min_examples: int, min_per_class: int) -> None:
    n = len(targets)
    counts = targets.sum(axis=0) if multi else np.bincount(targets)
    enough = int((counts >= min_per_class).sum())
    if n < min_examples or enough < (1 if multi else 2):
        raise NotEnoughLabels(f"{n} labeled images, {enough} classes with {min_per_class}+ labels: a head needs "
                              f"{min_examples}+ images and {min_per_class}+ labels in {1 if multi else 2}+ classes")


def fit_classifier(classes: list[str], multi: bool, features: np.ndarray, scores: np.ndarray,
                   targets: np.ndarray, ids: list[str], served: ImageClassifier | None = None,
                   min_examples: int = 10, min_per_class: int = 2, tolerance: float = 0.0,
                   seed: int = 0) -> FitReport:
    """Train a head on labeled images and judge it on held-out folds.

    Args:
        features: (n, dim) image features; scores: (n, n_classes) base scores of the same images.
        targets: (n,) class indices for single choice, (n, n_classes) 0/1 for multi choice.
        ids: a stable id per image (recorded, so that a later guard knows what this head has seen).
        served: the version served now, if any.
        tolerance: how much worse (accuracy, or Jaccard for multi choice) the candidate may be.

    Raises:
        NotEnoughLabels: below `min_examples` images or `min_per_class` labels in two classes (one for multi).
    """
    targets = np.asarray(targets, dtype=np.int64)
    _check_enough(targets, multi, min_examples, min_per_class)
    splits = folds(targets, multi, seed)
    if not splits:
        raise NotEnoughLabels("the labels cannot be split into two folds with each class on both sides")
    prior = base_logits(scores, multi)
    C, weight, _, oof = select(features, prior, targets, multi, splits)
    head = fit_head(features, targets, prior, multi, C, weight)
    candidate = ImageClassifier(list(classes), multi, head, list(ids))
    cand_ok = correct(oof, candidate.allowed(scores), targets, multi)
    base_ok = correct(scores, scores > 0, targets, multi)
    metrics: dict[str, Any] = {
        "n_examples": len(targets), "C": C, "prior_weight": weight, "folds": len(splits),
        "accuracy": float(cand_ok.mean()), "base_accuracy": float(base_ok.mean()),
    }
    if not multi:
        metrics["top5_accuracy"] = top_k_accuracy(oof, candidate.allowed(scores), targets, 5)
    verdicts = []
    if metrics["accuracy"] < metrics["base_accuracy"] - tolerance:
        verdicts.append(f"held-out accuracy {metrics['accuracy']:.3f} is below the base predictions' "
                        f"{metrics['base_accuracy']:.3f}")
    if served is not None and served.head is not None:
        seen = set(served.trained_ids)
        new = np.array([i not in seen for i in ids], dtype=bool)
        metrics["served_new_examples"] = int(new.sum())
        if new.any():
            served_p = served.proba(features[new], scores[new])
            served_ok = correct(served_p, served.allowed(scores[new]), targets[new], multi)
            metrics["served_accuracy"] = float(served_ok.mean())
            metrics["accuracy_on_new"] = float(cand_ok[new].mean())
            if metrics["accuracy_on_new"] < metrics["served_accuracy"] - tolerance:
                verdicts.append(f"held-out accuracy {metrics['accuracy_on_new']:.3f} on the {int(new.sum())} images "
                                f"the served version never saw is below its {metrics['served_accuracy']:.3f}")
    candidate.metrics = metrics
    return FitReport(candidate, metrics, publish=not verdicts, reason="; ".join(verdicts))




def fit_images(classes: list[str], multi: bool, scores: list, features: list, chosen: list[list[str]],
               ids: list[str], served: ImageClassifier | None = None, min_examples: int = 10, min_per_class: int = 2,
               tolerance: float = 0.0) -> FitReport:
    """`fit_classifier` on the images whose base scores and features were computed (an Exception in either leaves
    the image out).

    Args:
        scores, features: per image its base scores and feature vector, or the Exception that image raised.
        chosen: per image the class names its label chose.

    Raises:
        NotEnoughLabels: see `fit_classifier`.
    """
    good = [j for j, (s, f) in enumerate(zip(scores, features))
            if not isinstance(s, Exception) and not isinstance(f, Exception)]
    y = encode_targets(classes, [chosen[j] for j in good], multi)
    feats = np.stack([features[j] for j in good]) if good else np.zeros((0, 1))
    base = np.stack([scores[j] for j in good]) if good else np.zeros((0, len(classes)))
    return fit_classifier(classes, multi, feats, base, y, [ids[j] for j in good], served, min_examples,
                          min_per_class, tolerance)
