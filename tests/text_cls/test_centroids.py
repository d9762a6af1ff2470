"""The centroid classifier a single-choice head is served with (text_cls.centroids) on tiny arrays, and the
classifier serving it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from selection import MEASURES
from text_cls import ControlSpec, Encoder, TextClassifier, heads
from text_cls.centroids import (agreeing_confidence, centroid_proba, class_centroids, combine, out_of_fold,
                                served_product)
from text_cls.guard import judge

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


def test_a_label_without_labels_is_still_predicted_where_zero_shot_is_confident() -> None:
    """The head saw labels 0 and 1 only; label 2's share is the head's (zero-shot's), whatever the centroids say."""
    head = np.array([[0.05, 0.05, 0.9], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    # The centroid classifier is sure of label 0 everywhere, 2 included (its centroid is the prototype alone).
    cents = np.array([[0.98, 0.01, 0.01]] * 3)
    got = served_product(head, cents, np.array([0, 1]))
    np.testing.assert_allclose(got[:, 2], head[:, 2])  # untouched
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    assert got.argmax(axis=1).tolist() == [2, 2, 0]  # still chosen where zero-shot was confident
    assert np.allclose(got[:, 1], 0.0, atol=0.02)  # 0 and 1 share their mass by the product


def test_a_text_near_another_labels_centroid_flips_only_when_the_product_says_so() -> None:
    cents = class_centroids(LABELED, LABELS, PROTOTYPES)
    near_b = _unit([0.9, 1.0])  # nearer B's centroid (0.18 / 0.82)
    texts = np.array([near_b, near_b, _unit([1.0, 0.05])])
    # The head leans to A: weakly for the first and third text, strongly for the second.
    head = np.array([[0.6, 0.4], [0.95, 0.05], [0.6, 0.4]])
    other = centroid_proba(texts, cents)
    got = served_product(head, other, np.array([0, 1]))
    np.testing.assert_allclose(got, combine(head, other))  # every label seen: the plain product
    assert other[0].argmax() == 1 and other[2].argmax() == 0
    assert got.argmax(axis=1).tolist() == [1, 0, 0]  # flipped where the centroids outweigh the head, not otherwise


def test_out_of_fold_centroids_come_from_the_training_fold_only() -> None:
    """A B-labeled text sits among A's texts: from its fold's training labels B's centroid is far from it and the
    product says A; the centroids of every label (its own included) would pull B towards it."""
    E = np.array([_unit(v) for v in ([1, 0.1], [1, -0.1], [1, 0.0], [0.1, 1], [-0.1, 1], [0.9, 0.5])])
    y = np.array([0, 0, 0, 1, 1, 1])
    uniform = np.full((6, 2), 0.5)
    splits = [(np.array([0, 1, 3, 4]), np.array([2, 5])), (np.array([2, 5, 3, 0]), np.array([1, 4]))]
    got = out_of_fold(uniform, E, y, PROTOTYPES, splits)
    for train, test in splits:
        expected = centroid_proba(E[test], class_centroids(E[train], y[train], PROTOTYPES))
        np.testing.assert_allclose(got[test], expected)
    leaked = centroid_proba(E[[5]], class_centroids(E, y, PROTOTYPES))
    assert got[5, 1] < leaked[0, 1]
    np.testing.assert_array_equal(got[[0, 3]], uniform[[0, 3]])  # in no test fold: left as given


def test_the_guard_judges_the_served_versions_product() -> None:
    """With served_centroids the served version's out-of-fold predictions are its head's product with fold-local
    centroids; without, its head alone (a version saved before centroids were kept)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    E = np.array([_unit(v) for v in np.where(y[:, None] == 0, [1.0, 0.0], [0.0, 1.0]) + rng.normal(0, 0.6, (20, 2))])
    zs = rng.normal(0, 1, (20, 2))
    spec = ControlSpec("c", ["a", "b"])
    splits = heads.folds(y, False, 0, 5)
    head_oof = heads.out_of_fold(E, zs, y, False, splits, 1.0, 0.3)
    product_oof = out_of_fold(head_oof, E, y, PROTOTYPES, splits)
    cand = heads.score(product_oof, y, False)
    args = (spec, E, zs, y, splits, cand, product_oof, (1.0, 0.3), 0.0, 2000)
    with_centroids = judge(*args, prototypes=PROTOTYPES, served_centroids=True)
    head_alone = judge(*args, prototypes=PROTOTYPES, served_centroids=False)
    assert with_centroids["served"] == cand and not with_centroids["worse"]  # the same recipe: level
    assert head_alone["served"] == heads.score(head_oof, y, False)
    assert head_alone["served"] != cand


def _head_alone(clf: TextClassifier, texts: list[str]) -> np.ndarray:
    E = clf.encoder.encode(texts)
    return clf.heads["sentiment"].proba(E, clf._zero_shot_logits(clf.controls[0], E))


def test_classifier_serves_the_product_through_save_and_load(tmp_path: Path, encoder: Encoder) -> None:
    clf, spec = _fit(encoder)
    assert set(clf.centroids) == {"sentiment"} and clf.centroids["sentiment"].shape == (3, encoder.dim)
    probe = ["A wonderful film", "Dull and far too long", "The train leaves at noon"]
    got = clf.predict_proba(probe)
    head = _head_alone(clf, probe)
    expected = served_product(head, centroid_proba(encoder.encode(probe), clf.centroids["sentiment"]),
                              clf.heads["sentiment"].classes)
    np.testing.assert_allclose(got["sentiment"], expected)
    assert not np.allclose(got["sentiment"], head) and np.allclose(got["sentiment"].sum(axis=1), 1.0)
    np.testing.assert_allclose(got["sentiment"][:, 2], head[:, 2])  # "neutral" has no labels: zero-shot's share
    assert got["sentiment"][0].argmax() == 0  # "A wonderful film": positive
    # The guard's candidate is what is served: the product of the chosen recipe's out-of-fold heads and each
    # fold's own centroids (from its training labels only).
    m = clf.metrics["sentiment"]
    texts = [t for ts in SENTIMENT.values() for t in ts] * 2
    E, y = encoder.encode(texts), np.tile(np.repeat([0, 1], 4), 2)
    zs = clf._zero_shot_logits(spec, E)
    splits = heads.folds(y, False, clf.params["seed"], clf.params["cv_folds"])
    oof = out_of_fold(heads.out_of_fold(E, zs, y, False, splits, m["C"], m["zero_shot_weight"]), E, y,
                      clf.prototypes["sentiment"], splits)
    assert m["guard"]["candidate"] == heads.score(oof, y, False)
    assert m["cv_log_loss"] == m["guard"]["candidate"]["log_loss"]
    loaded = TextClassifier.load(clf.save(tmp_path / "v"), encoder)
    np.testing.assert_array_equal(loaded.predict_proba(probe)["sentiment"], got["sentiment"])
    np.testing.assert_array_equal(loaded.predict_proba(probe)["topic"], got["topic"])


def test_a_version_saved_without_centroids_serves_its_head(tmp_path: Path, encoder: Encoder) -> None:
    clf, _ = _fit(encoder)
    clf.centroids = {}  # what versions saved before the centroids were kept hold
    loaded = TextClassifier.load(clf.save(tmp_path / "old"), encoder)
    assert loaded.centroids == {}
    probe = ["A wonderful film"]
    np.testing.assert_allclose(loaded.predict_proba(probe)["sentiment"], _head_alone(loaded, probe))
    assert not loaded.serves_centroids(loaded.controls[0]) and clf.recipe(clf.controls[0]) is not None


def test_a_new_fit_is_judged_against_the_served_product(encoder: Encoder) -> None:
    served, spec = _fit(encoder)
    assert served.serves_centroids(spec)
    clf, _ = _fit(encoder)
    texts = [t for ts in SENTIMENT.values() for t in ts] * 2
    guard = clf.fit(texts, {"sentiment": [[label] for label, ts in SENTIMENT.items() for _ in ts] * 2},
                    served=served)["sentiment"]["guard"]
    assert guard["served_mode"] == "trained" and not guard["worse"]
    assert guard["served"] == guard["candidate"]  # the same recipe and labels: the same served distribution


def test_centroids_false_serves_and_judges_the_head_alone(encoder: Encoder) -> None:
    served, spec = _fit(encoder)
    clf = TextClassifier(encoder, served.controls, params={"centroids": False})
    texts = [t for ts in SENTIMENT.values() for t in ts] * 2
    m = clf.fit(texts, {"sentiment": [[label] for label, ts in SENTIMENT.items() for _ in ts] * 2},
                served=served)["sentiment"]
    assert clf.centroids == {} and not clf.serves_centroids(spec)
    probe = ["A wonderful film", "The train leaves at noon"]
    np.testing.assert_allclose(clf.predict_proba(probe)["sentiment"], _head_alone(clf, probe))
    # Its candidate is the head alone; the served version is judged on its product: the two differ.
    assert m["guard"]["candidate"] != m["guard"]["served"]
