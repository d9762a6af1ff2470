"""The task score's centroid classifier (text_cls.centroids) on tiny arrays, and the classifier keeping it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from selection import MEASURES
from text_cls import ControlSpec, Encoder, TextClassifier
from text_cls.centroids import agreeing_confidence, centroid_proba, class_centroids, combine

# Two labels in the plane: A's labeled texts around the x axis, B's around the y axis; the prototypes sit on them.
PROTOTYPES = np.array([[1.0, 0.0], [0.0, 1.0]])
LABELED = np.array([[0.98, 0.2], [0.98, -0.2], [0.2, 0.98], [-0.2, 0.98]])
LABELS = np.array([0, 0, 1, 1])


def _unit(v: list[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_centroids_mean_the_labeled_texts_with_the_prototype() -> None:
    protos = np.array([[1.0, 0.0], [0.0, 1.0], [_unit([1, 1])[0], _unit([1, 1])[1]]])
    got = class_centroids(np.array([[0.0, 1.0], [0.6, 0.8]]), np.array([1, 1]), protos)
    assert got.shape == (3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], [1.0, 0.0])  # no labels: the prototype alone
    np.testing.assert_allclose(got[1], _unit([0.6, 3.8]), rtol=1e-6)  # two labeled texts and the prototype twice
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)


def test_centroid_proba_prefers_the_nearest_centroid() -> None:
    cents = class_centroids(LABELED, LABELS, PROTOTYPES)
    p = centroid_proba(np.array([_unit([1, 0.1]), _unit([0.1, 1])]), cents)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0, 0] > 0.9 and p[1, 1] > 0.9


def test_combine_is_a_normalised_product() -> None:
    got = combine(np.array([[0.8, 0.2], [0.5, 0.5], [1.0, 0.0]]), np.array([[0.5, 0.5], [0.9, 0.1], [0.0, 1.0]]))
    np.testing.assert_allclose(got, [[0.8, 0.2], [0.9, 0.1], [0.5, 0.5]])


def test_a_text_near_the_other_labels_scores_lower_than_one_deep_in_its_own() -> None:
    """The head is equally sure of A for both texts; the one among B's labeled texts scores lower, under every
    measure."""
    cents = class_centroids(LABELED, LABELS, PROTOTYPES)
    texts = np.array([_unit([1.0, 0.05]), _unit([0.5, 1.0])])  # deep in A; near B's texts
    head = np.array([[0.8, 0.2], [0.8, 0.2]])
    score = combine(head, centroid_proba(texts, cents))
    for name, measure in MEASURES.items():
        conf = agreeing_confidence(measure, head, score)
        assert conf[0] > conf[1], name
        assert conf[0] >= measure(head)[0], name  # the two experts agree: surer than the head alone


def test_disagreeing_experts_score_zero_and_multi_choice_is_the_measure() -> None:
    measure = MEASURES["least_confidence"]
    head = np.array([[0.6, 0.4], [0.9, 0.1]])
    score = np.array([[0.3, 0.7], [0.95, 0.05]])  # the first's combined top is not the served label
    conf = agreeing_confidence(measure, head, score)
    assert conf[0] == 0.0 and conf[1] > 0.8
    multi = np.array([[0.9, 0.2], [0.6, 0.7]])
    np.testing.assert_array_equal(agreeing_confidence(measure, multi, multi, multi=True),
                                  measure(multi, multi_label=True))
    assert agreeing_confidence(measure, np.zeros((0, 2)), np.zeros((0, 2))).shape == (0,)


SENTIMENT = {"positive": ["I loved this film, it was wonderful", "A great and moving story",
                          "Brilliant acting, superb!", "What a delightful, charming movie"],
             "negative": ["I hated every minute of it", "A boring, terrible mess", "Awful acting and a dull plot",
                          "The worst film I have seen"]}


def _fit(encoder: Encoder) -> tuple[TextClassifier, ControlSpec]:
    spec = ControlSpec("sentiment", ["positive", "negative", "neutral"])
    clf = TextClassifier(encoder, [spec, ControlSpec("topic", ["a", "b"], multi=True)])
    texts = [t for ts in SENTIMENT.values() for t in ts] * 2
    clf.fit(texts, {"sentiment": [[label] for label, ts in SENTIMENT.items() for _ in ts] * 2})
    return clf, spec


def test_classifier_keeps_centroids_through_save_and_load(tmp_path: Path, encoder: Encoder) -> None:
    clf, spec = _fit(encoder)
    assert set(clf.centroids) == {"sentiment"} and clf.centroids["sentiment"].shape == (3, encoder.dim)
    probe = ["A wonderful film", "Dull and far too long", "The train leaves at noon"]
    got = clf.predict_scored(probe)
    proba, score = got["sentiment"]
    np.testing.assert_array_equal(proba, clf.predict_proba(probe)["sentiment"])
    assert not np.allclose(score, proba) and np.allclose(score.sum(axis=1), 1.0)
    np.testing.assert_array_equal(got["topic"][0], got["topic"][1])  # zero-shot: the probabilities themselves
    loaded = TextClassifier.load(clf.save(tmp_path / "v"), encoder)
    np.testing.assert_array_equal(loaded.predict_scored(probe)["sentiment"][1], score)


def test_a_version_saved_without_centroids_scores_its_probabilities(tmp_path: Path, encoder: Encoder) -> None:
    clf, _ = _fit(encoder)
    clf.centroids = {}  # what versions saved before the centroids were kept hold
    loaded = TextClassifier.load(clf.save(tmp_path / "old"), encoder)
    assert loaded.centroids == {}
    proba, score = loaded.predict_scored(["A wonderful film"])["sentiment"]
    np.testing.assert_array_equal(proba, score)
