"""image_cls without Label Studio: base scores, top-k, the head over base scores, the guard and saving."""
from __future__ import annotations

import numpy as np
import pytest

from image_cls import ImageClassifier, NotEnoughLabels, base_scores, choose, fit_classifier, top_k
from image_cls.classifier import correct

CLASSES = ["cat", "dog", "bird"]


def _data(n: int, seed: int = 0, dim: int = 16):
    """Features that separate the three classes; a base model that knows only "cat" and finds it half the time."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = rng.normal(size=(3, dim)) * 3
    X = centres[y] + rng.normal(size=(n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    found = [[(0, 0.8)] if t == 0 and i % 2 == 0 else [] for i, t in enumerate(y)]
    return X, base_scores(found, 3), y


def test_base_scores_keep_the_best_box_per_class_and_top_k_names_only_found_classes():
    scores = base_scores([[(0, 0.3), (0, 0.9), (2, 0.4)], []], 3)
    assert scores.tolist() == [[0.9, 0.0, 0.4], [0.0, 0.0, 0.0]]
    assert top_k(scores[0], CLASSES, 5) == [("cat", 0.9), ("bird", 0.4)]
    assert top_k(scores[0], CLASSES, 1) == [("cat", 0.9)]
    assert top_k(scores[1], CLASSES, 5) == [] and choose([], multi=False) == []
    assert choose([("cat", 0.9), ("bird", 0.4)], multi=True) == ["cat"]
    assert choose([("cat", 0.3), ("bird", 0.2)], multi=True) == ["cat"]  # at least the best one


def test_without_a_head_the_classifier_is_the_base_model():
    clf = ImageClassifier(CLASSES, multi=False)
    scores = base_scores([[(1, 0.7)]], 3)
    assert np.allclose(clf.proba(None, scores), scores)
    assert clf.allowed(scores).tolist() == [[False, True, False]]


def test_too_few_labels_are_refused():
    X, s, y = _data(9)
    with pytest.raises(NotEnoughLabels, match="10"):
        fit_classifier(CLASSES, False, X, s, y, [str(i) for i in range(9)])
    X, s, y = _data(12)
    with pytest.raises(NotEnoughLabels):
        fit_classifier(CLASSES, False, X, s, np.zeros(12, dtype=int), [str(i) for i in range(12)])


def test_a_head_learns_classes_the_base_model_does_not_know_and_is_published(tmp_path):
    X, s, y = _data(30)
    report = fit_classifier(CLASSES, False, X, s, y, [str(i) for i in range(30)])
    assert report.publish, report.reason
    assert report.metrics["accuracy"] > 0.9 and report.metrics["base_accuracy"] < 0.2
    Xt, st, yt = _data(30, seed=0)
    proba = report.classifier.proba(Xt, st)
    assert np.allclose(proba.sum(axis=1), 1) and (proba.argmax(axis=1) == yt).mean() > 0.9
    report.classifier.save(tmp_path / "v")
    loaded = ImageClassifier.load(tmp_path / "v")
    assert np.allclose(loaded.proba(Xt, st), proba) and loaded.trained_ids == report.classifier.trained_ids


def test_the_guard_rejects_a_head_worse_than_the_base_model():
    """A base model that is always right; a negative tolerance asks the head to beat 100%: rejected, with numbers."""
    rng = np.random.default_rng(1)
    y = np.arange(30) % 3
    X = rng.normal(size=(30, 8))
    s = base_scores([[(int(t), 0.9)] for t in y], 3)
    report = fit_classifier(CLASSES, False, X, s, y, [str(i) for i in range(30)], tolerance=-0.01)
    assert report.metrics["base_accuracy"] == 1.0
    assert not report.publish and "below the base predictions' 1.000" in report.reason
    assert report.classifier.metrics["accuracy"] == report.metrics["accuracy"]  # kept with its numbers


def test_the_guard_compares_with_the_served_version_only_on_images_it_never_saw():
    X, s, y = _data(30)
    ids = [str(i) for i in range(30)]
    served = fit_classifier(CLASSES, False, X[:15], s[:15], y[:15], ids[:15]).classifier
    report = fit_classifier(CLASSES, False, X, s, y, ids, served=served)
    assert report.metrics["served_new_examples"] == 15 and "served_accuracy" in report.metrics
    again = fit_classifier(CLASSES, False, X, s, y, ids, served=report.classifier)
    assert again.metrics["served_new_examples"] == 0 and "served_accuracy" not in again.metrics


def test_multi_choice_is_scored_by_set_overlap():
    truth = np.array([[1, 1, 0], [0, 0, 1]])
    proba = np.array([[0.9, 0.2, 0.1], [0.1, 0.1, 0.8]])
    allowed = np.ones_like(truth, dtype=bool)
    assert correct(proba, allowed, truth, multi=True).tolist() == [0.5, 1.0]
    X, s, y = _data(30)
    Y = np.eye(3, dtype=int)[y]
    report = fit_classifier(CLASSES, True, X, s, Y, [str(i) for i in range(30)])
    assert report.publish and report.metrics["accuracy"] > 0.8


def test_chosen_names_become_targets():
    from image_cls.classifier import encode_targets

    assert encode_targets(CLASSES, [["dog"], ["cat"]], multi=False).tolist() == [1, 0]
    assert encode_targets(CLASSES, [["dog", "bird"], []], multi=True).tolist() == [[0, 1, 1], [0, 0, 0]]
