"""Real-weights quality on TREC-6 coarse classes (6 classes: chance 0.17, majority class 0.28 on the test set).

Measured with seed 0 (300 test questions, 120 training questions): zero-shot 0.67, trained head 0.80
(cross-validated 0.75); 12 training questions 0.72.
"""
from __future__ import annotations

import numpy as np
import pytest

from text_cls import ControlSpec, Encoder, TextClassifier


@pytest.fixture(scope="module")
def split(trec) -> dict:
    rng = np.random.default_rng(0)
    train_texts, train_labels = trec["train"]
    test_texts, test_labels = trec["test"]
    tr = rng.permutation(len(train_texts))[:120]
    te = rng.permutation(len(test_texts))[:300]
    return {
        "train": ([train_texts[i] for i in tr], [train_labels[i] for i in tr]),
        "test": ([test_texts[i] for i in te], [test_labels[i] for i in te]),
    }


def _accuracy(clf: TextClassifier, texts: list[str], labels: list[str]) -> float:
    spec = clf.controls[0]
    predicted = clf.predict_proba(texts)[spec.name].argmax(axis=1)
    return float(np.mean([spec.labels[p] == y for p, y in zip(predicted, labels)]))


def test_zero_shot_beats_chance_then_training_beats_zero_shot(encoder: Encoder, trec_spec: ControlSpec, split) -> None:
    clf = TextClassifier(encoder, [trec_spec])
    zero_shot = _accuracy(clf, *split["test"])
    assert zero_shot > 0.45, zero_shot  # measured 0.67

    texts, labels = split["train"]
    metrics = clf.fit(texts, {trec_spec.name: [[y] for y in labels]})[trec_spec.name]
    assert metrics["mode"] == "trained" and metrics["n_examples"] == 120
    assert metrics["cv_accuracy"] > 0.6  # measured 0.75
    trained = _accuracy(clf, *split["test"])
    assert trained > 0.72, trained  # measured 0.80
    assert trained > zero_shot + 0.08


def test_label_names_alone_still_learn(encoder: Encoder, trec_spec: ControlSpec, split) -> None:
    # Bare label codes make a poor zero-shot prior; the head must then learn from the embeddings alone.
    clf = TextClassifier(encoder, [ControlSpec("question", trec_spec.labels)])
    texts, labels = split["train"]
    metrics = clf.fit(texts, {"question": [[y] for y in labels]})["question"]
    assert metrics["zero_shot_weight"] < 0.3  # measured 0.0002: the head learnt to ignore zero-shot
    assert _accuracy(clf, *split["test"]) > 0.6  # measured 0.70


def test_few_labels_keep_zero_shot_quality(encoder: Encoder, trec_spec: ControlSpec, split) -> None:
    # With 12 labels a head trained from scratch scores about 0.3; built on zero-shot it keeps zero-shot's level.
    clf = TextClassifier(encoder, [trec_spec])
    zero_shot = _accuracy(clf, *split["test"])
    texts, labels = split["train"]
    metrics = clf.fit(texts[:12], {trec_spec.name: [[y] for y in labels[:12]]})[trec_spec.name]
    assert metrics["mode"] == "trained"
    few = _accuracy(clf, *split["test"])
    assert few > zero_shot - 0.05, (few, zero_shot)  # measured 0.72 against 0.67


@pytest.mark.parametrize("n", [24, 100])
def test_head_is_at_least_plain_logistic_regression(encoder: Encoder, trec_spec: ControlSpec, split, n) -> None:
    # The served head against sklearn's LogisticRegression() on the same embeddings and labels, with label
    # descriptions (zero-shot helps) and with bare codes (it barely does). The old head, which learnt its trust
    # in zero-shot in the fit, fell below plain logistic regression with more labels (SST-2, 200: 0.72 / 0.73).
    from sklearn.linear_model import LogisticRegression

    texts, labels = split["train"][0][:n], split["train"][1][:n]
    lr = LogisticRegression().fit(encoder.encode(texts), labels)
    plain = float(np.mean(lr.predict(encoder.encode(split["test"][0])) == np.array(split["test"][1])))
    for spec in (trec_spec, ControlSpec("question", trec_spec.labels)):
        clf = TextClassifier(encoder, [spec])
        clf.fit(texts, {"question": [[y] for y in labels]})
        assert _accuracy(clf, *split["test"]) >= plain - 0.02, (spec.descriptions != {}, plain)
