"""What a single-choice head serves: its product with a nearest-centroid classifier over the labeled texts.

A single-choice head's own probabilities say only loosely where it is wrong (AUROC of its least confidence for the
wrong predictions on held-out texts, 5 seeds of random labels: TREC-6 0.65-0.78 and SST-2 0.67-0.72 at 24-200
labels, near the ceiling of this encoder's logistic regression). Where a text lies among the labeled texts is a
different signal (Jiang et al. 2018, "To Trust or Not to Trust a Classifier"): each label's centroid is the
normalised mean of its labeled embeddings and its zero-shot prototype counted `PROTOTYPE_WEIGHT` times (alone for
a label without labels), and the centroid classifier's probabilities are a softmax of the cosine similarities over
`TEMPERATURE`.

The served distribution is the product of the two experts over the labels the head was trained on, renormalised
within the mass the head gives them (`served_product`); labels without labels keep the head's (zero-shot's)
probability. Its argmax chose right more often than the head's at every N measured, and the task score's
uncertainty measure is taken on it (bench/results/text_learning.json, text_score.json). `agreeing_confidence` is
the score the benches compare with: the measure on the product, 0 where its choice is not another's.

Only k centroids are kept per control (k x dim floats), never the labeled embeddings themselves.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .zero_shot import softmax

# Softmax temperature over cosine similarities to the centroids. AUROC changed by at most 0.01 between 0.02 and 0.1
# on TREC-6 and SST-2 (24-200 labels); 0.05 sits in the middle.
TEMPERATURE = 0.05
# How many labeled texts a label's prototype counts as. Against 1, 2 raised the AUROC at 24 labels by 0.01 (TREC-6
# 0.740 -> 0.752, SST-2 0.658 -> 0.667) and left 40-200 labels within 0.003; 4 and 8 lost on TREC-6 (chosen on the
# bench's own held-out texts, so the 24-label figures are a little optimistic).
PROTOTYPE_WEIGHT = 2.0


def class_centroids(embeddings: np.ndarray, targets: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """One unit-length centroid per label: the mean of its labeled embeddings and its prototype (counted
    `PROTOTYPE_WEIGHT` times).

    Args:
        embeddings: (n, dim) labeled text embeddings.
        targets: (n,) label indices.
        prototypes: (n_labels, dim) zero-shot prototypes.

    Returns:
        float32 array (n_labels, dim).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    targets = np.asarray(targets)
    prototypes = np.asarray(prototypes, dtype=np.float64)
    out = np.empty(prototypes.shape, dtype=np.float32)
    for label, prototype in enumerate(prototypes):
        total = embeddings[targets == label].sum(axis=0) + PROTOTYPE_WEIGHT * prototype
        out[label] = total / max(float(np.linalg.norm(total)), 1e-12)
    return out


def centroid_proba(embeddings: np.ndarray, centroids: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """The nearest-centroid classifier's probabilities, (n, n_labels) float64."""
    sims = np.asarray(embeddings, dtype=np.float64) @ np.asarray(centroids, dtype=np.float64).T
    return softmax(sims / temperature)


def combine(proba: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The product of two experts' distributions, renormalised per row (rows where the product vanishes: uniform).
    """
    joint = np.asarray(proba, dtype=np.float64) * np.asarray(other, dtype=np.float64)
    total = joint.sum(axis=1, keepdims=True)
    return np.where(total > 0, joint / np.where(total > 0, total, 1.0), 1.0 / max(joint.shape[1], 1))


def served_product(proba: np.ndarray, other: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """What a single-choice head with centroids serves: `proba` with the labels in `seen` sharing their mass by the
    renormalised product of the two experts (`combine`), the other labels left as they are.

    The labels without labels of their own keep the head's probability for them (zero-shot's, `heads.LinearHead`):
    their centroid is their prototype alone, which sits farther from every text than the labeled texts' centroids,
    so the product over all labels would take their texts away (12 labels of 2 of 4 TREC classes: the recall of
    Human fell from 0.50 to 0.31; bench/results/text_learning.json, "tried").

    Args:
        proba: (n, n_labels) the head's probabilities.
        other: (n, n_labels) the centroid classifier's (`centroid_proba`).
        seen: label indices the head was trained on (`LinearHead.classes`).

    Returns:
        (n, n_labels) float64, rows summing to `proba`'s.
    """
    out = np.array(proba, dtype=np.float64)
    seen = np.asarray(seen, dtype=np.int64)
    if not len(seen) or not len(out):
        return out
    mass = out[:, seen].sum(axis=1, keepdims=True)
    out[:, seen] = mass * combine(out[:, seen], np.asarray(other, dtype=np.float64)[:, seen])
    return out


def out_of_fold(head_proba: np.ndarray, embeddings: np.ndarray, targets: np.ndarray, prototypes: np.ndarray,
                splits: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """`served_product` of out-of-fold head probabilities, each fold's centroids from its training part only (the
    held-out labels must not pull their own centroid towards them).

    Args:
        head_proba: (n, n_labels) each example's probabilities from the head of the fold that held it out.
        embeddings, targets: (n, dim) labeled embeddings and their (n,) label indices.
        prototypes: (n_labels, dim) zero-shot prototypes.
        splits: the (train, test) index pairs `head_proba` came from.

    Returns:
        (n, n_labels) float64.
    """
    out = np.array(head_proba, dtype=np.float64)
    for train, test in splits:
        found = class_centroids(embeddings[train], targets[train], prototypes)
        out[test] = served_product(out[test], centroid_proba(embeddings[test], found), np.unique(targets[train]))
    return out


def agreeing_confidence(measure: Callable[..., np.ndarray], proba: np.ndarray, score_proba: np.ndarray,
                        multi: bool = False) -> np.ndarray:
    """The measure's confidence on `score_proba`, 0 where its top label is not the served one (`proba`'s).

    Args:
        measure: `measure(probs, multi_label=...) -> (n,) confidence in [0, 1]` (an uncertainty measure).
        proba: (n, n_labels) the served probabilities (their argmax is the served choice).
        score_proba: (n, n_labels) the distribution the score is measured on (`combine`'s, or `proba` itself).
        multi: multi choice (then `score_proba` is not compared: each label is its own decision).

    Returns:
        (n,) float64 confidences.
    """
    conf = np.asarray(measure(score_proba, multi_label=multi), dtype=np.float64)
    if multi or not len(conf):
        return conf
    return np.where(np.argmax(score_proba, axis=1) == np.argmax(proba, axis=1), conf, 0.0)
