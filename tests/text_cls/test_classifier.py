from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from text_cls import ControlSpec, Encoder, TextClassifier

SENTIMENT = {
    "positive": ["I loved this film, it was wonderful", "A great and moving story", "Brilliant acting, superb!",
                 "What a delightful, charming movie", "An excellent, joyful experience", "Fantastic, I enjoyed it"],
    "negative": ["I hated every minute of it", "A boring, terrible mess", "Awful acting and a dull plot",
                 "The worst film I have seen", "Painfully bad and far too long", "A dreadful waste of time"],
}
TOPICS = ["sports", "politics", "food"]
MULTI_TEXTS = [
    ("The team won the football final", ["sports"]),
    ("The striker scored twice in the match", ["sports"]),
    ("Tennis star wins the open", ["sports"]),
    ("Parliament passed the new budget law", ["politics"]),
    ("The senator announced her campaign", ["politics"]),
    ("Voters head to the polls for the election", ["politics"]),
    ("The president met the football team after their victory", ["sports", "politics"]),
    ("Minister criticised over stadium funding", ["sports", "politics"]),
    ("The weather is mild this week", []),
    ("A new phone was released today", []),
    ("The cinema reopens next month", []),
    ("Players celebrated the championship", ["sports"]),
]


def _sentiment_data(n_per_class: int) -> tuple[list[str], list[list[str]]]:
    texts, targets = [], []
    for i in range(n_per_class):
        for label, examples in SENTIMENT.items():
            texts.append(examples[i % len(examples)] + ("" if i < len(examples) else f" ({i})"))
            targets.append([label])
    return texts, targets


@pytest.fixture
def sentiment() -> ControlSpec:
    return ControlSpec("sentiment", ["positive", "negative", "neutral"])


@pytest.fixture
def topics() -> ControlSpec:
    return ControlSpec("topic", TOPICS, multi=True, descriptions={"food": ["cooking", "restaurant"]})


def test_control_spec_validation() -> None:
    with pytest.raises(ValueError, match="repeats"):
        ControlSpec("c", ["a", "a"])
    with pytest.raises(ValueError, match="unknown labels"):
        ControlSpec("c", ["a"], descriptions={"b": ["x"]})
    with pytest.raises(ValueError, match="no labels"):
        ControlSpec("c", [])
    assert ControlSpec("c", ["a"], descriptions={"a": "alpha"}).descriptions == {"a": ["alpha"]}


def test_zero_shot_shapes_and_ranges(encoder: Encoder, sentiment: ControlSpec, topics: ControlSpec) -> None:
    clf = TextClassifier(encoder, [sentiment, topics])
    proba = clf.predict_proba(["A wonderful film, I loved it", "The election results are in"])
    assert clf.mode("sentiment") == clf.mode("topic") == "zero_shot"
    assert proba["sentiment"].shape == (2, 3) and proba["topic"].shape == (2, 3)
    np.testing.assert_allclose(proba["sentiment"].sum(axis=1), 1.0)
    assert ((proba["topic"] >= 0) & (proba["topic"] <= 1)).all()
    assert proba["sentiment"][0].argmax() == 0  # positive
    assert proba["topic"][1].argmax() == 1 and proba["topic"][1, 1] > 0.5 > proba["topic"][1, 2]  # politics only
    empty = clf.predict_proba([])
    assert empty["sentiment"].shape == (0, 3) and empty["topic"].shape == (0, 3)
    with pytest.raises(KeyError):
        clf.mode("nope")


def test_mode_switches_at_min_examples(encoder: Encoder, sentiment: ControlSpec) -> None:
    texts, targets = _sentiment_data(5)
    clf = TextClassifier(encoder, [sentiment])
    metrics = clf.fit(texts[:9], {"sentiment": targets[:9]})
    assert metrics["sentiment"]["mode"] == "zero_shot" == clf.mode("sentiment")
    assert metrics["sentiment"]["n_examples"] == 9 and metrics["sentiment"]["cv_accuracy"] is None
    metrics = clf.fit(texts[:10], {"sentiment": targets[:10]})
    assert metrics["sentiment"]["mode"] == "trained" == clf.mode("sentiment")
    assert metrics["sentiment"]["classes"] == {"positive": 5, "negative": 5}
    assert metrics["sentiment"]["cv_folds"] == 5 and metrics["sentiment"]["cv_accuracy"] >= 0.8
    assert 0 <= metrics["sentiment"]["cv_macro_f1"] <= 1
    # The bar is configurable, and a control with answers for too few texts stays zero-shot.
    assert clf.fit(texts[:10], {"sentiment": targets[:10]}, {"min_examples": 11})["sentiment"]["mode"] == "zero_shot"


def test_needs_two_classes_with_min_per_class(encoder: Encoder, sentiment: ControlSpec) -> None:
    texts, _ = _sentiment_data(6)
    targets = [["positive"]] * 11 + [["negative"]]
    clf = TextClassifier(encoder, [sentiment])
    assert clf.fit(texts, {"sentiment": targets})["sentiment"]["mode"] == "zero_shot"
    targets[-2] = ["negative"]
    metrics = clf.fit(texts, {"sentiment": targets})["sentiment"]
    assert metrics["mode"] == "trained"
    assert metrics["cv_folds"] == 2


def test_single_choice_unseen_labels_keep_zero_shot(encoder: Encoder, sentiment: ControlSpec) -> None:
    texts, targets = _sentiment_data(6)
    clf = TextClassifier(encoder, [sentiment])
    probe = ["An absolute joy to watch", "Tedious and dreadful", "It is a film"]
    before = clf.predict_proba(probe)["sentiment"]
    clf.fit(texts, {"sentiment": targets})
    proba = clf.predict_proba(probe)["sentiment"]
    np.testing.assert_allclose(proba[:, 2], before[:, 2])  # "neutral" was never annotated: zero-shot's share
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[0].argmax() == 0 and proba[1].argmax() == 1


def test_bad_params_name_the_param(encoder: Encoder, sentiment: ControlSpec) -> None:
    with pytest.raises(ValueError, match="'C' must be a number"):
        TextClassifier(encoder, [sentiment], {"C": "abc"})
    with pytest.raises(ValueError, match="'prior_weight'"):
        TextClassifier(encoder, [sentiment], {"prior_weight": -1})
    assert TextClassifier(encoder, [sentiment], {"C": "2"}).params["C"] == 2.0
    with pytest.raises(ValueError, match="'centroids' must be true or false"):
        TextClassifier(encoder, [sentiment], {"centroids": "no"})
    assert TextClassifier(encoder, [sentiment], {"centroids": "false"}).params["centroids"] is False


def test_none_targets_are_excluded(encoder: Encoder, sentiment: ControlSpec, topics: ControlSpec) -> None:
    texts, targets = _sentiment_data(6)
    partial = [t if i % 3 else None for i, t in enumerate(targets)]
    clf = TextClassifier(encoder, [sentiment, topics])
    metrics = clf.fit(texts, {"sentiment": partial})
    assert metrics["sentiment"]["n_examples"] == 8
    assert metrics["topic"] == {**metrics["topic"], "mode": "zero_shot", "n_examples": 0}


def test_multi_label_fit_and_predict(encoder: Encoder, topics: ControlSpec) -> None:
    texts = [t for t, _ in MULTI_TEXTS]
    targets = [labels for _, labels in MULTI_TEXTS]
    clf = TextClassifier(encoder, [topics])
    new = ["The coach praised the players after the game", "Lawmakers debate the tax bill",
           "A recipe for tomato soup"]
    before = clf.predict_proba(new)["topic"]
    metrics = clf.fit(texts, {"topic": targets})["topic"]
    assert metrics["mode"] == "trained"
    assert metrics["classes"] == {"sports": 6, "politics": 5}
    assert metrics["cv_accuracy"] is not None and 0 <= metrics["cv_macro_f1"] <= 1
    after = clf.predict_proba(new)["topic"]
    assert after.shape == (3, 3) and ((after >= 0) & (after <= 1)).all()
    assert after[0, 0] > 0.5 > after[0, 1]
    assert after[1, 1] > 0.5 > after[1, 0]
    # "food" was never chosen: it keeps its zero-shot probability.
    np.testing.assert_allclose(after[:, 2], before[:, 2])
    assert after[2, 2] > 0.5


def test_multi_label_in_every_example_gets_a_constant(encoder: Encoder, topics: ControlSpec) -> None:
    texts = [t for t, _ in MULTI_TEXTS]
    targets = [sorted({"food", *labels}) for _, labels in MULTI_TEXTS]
    clf = TextClassifier(encoder, [topics])
    clf.fit(texts, {"topic": targets})
    proba = clf.predict_proba(["anything at all", "The striker scored"])["topic"]
    assert proba[0, 2] == proba[1, 2] > 0.9


def test_unknown_labels_and_controls_raise(encoder: Encoder, sentiment: ControlSpec, topics: ControlSpec) -> None:
    clf = TextClassifier(encoder, [sentiment, topics])
    with pytest.raises(ValueError, match=r"sentiment.*\['great', 'meh'\].*topic.*\['cars'\]"):
        clf.fit(["a", "b"], {"sentiment": [["meh"], ["great"]], "topic": [["cars"], None]})
    with pytest.raises(ValueError, match="unknown controls"):
        clf.fit(["a"], {"colour": [["red"]]})
    with pytest.raises(ValueError, match="expected a list of 2"):
        clf.fit(["a", "b"], {"sentiment": [["positive"]]})


def test_fit_is_deterministic(encoder: Encoder, sentiment: ControlSpec, topics: ControlSpec) -> None:
    texts, targets = _sentiment_data(6)
    runs = []
    for _ in range(2):
        clf = TextClassifier(encoder, [sentiment, topics], {"seed": 3})
        runs.append((clf.fit(texts, {"sentiment": targets}), clf.predict_proba(texts)))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1]["sentiment"], runs[1][1]["sentiment"])


def test_save_load_round_trip(tmp_path: Path, encoder: Encoder, sentiment: ControlSpec, topics: ControlSpec) -> None:
    texts, targets = _sentiment_data(6)
    multi_texts = [t for t, _ in MULTI_TEXTS]
    clf = TextClassifier(encoder, [sentiment, topics, ControlSpec("extra", ["x", "y"])], {"C": 3.0})
    clf.fit(texts + multi_texts, {
        "sentiment": targets + [None] * len(multi_texts),
        "topic": [None] * len(texts) + [labels for _, labels in MULTI_TEXTS],
    })
    probe = ["Loved it", "The match was boring", "Election day", "x and y"]
    expected = clf.predict_proba(probe)
    clf.save(tmp_path / "v1")
    assert not (tmp_path / "v1" / "encoder").exists()  # not fine-tuned: only heads are saved
    config = json.loads((tmp_path / "v1" / "text_classifier.json").read_text())
    assert config["params"]["C"] == 3.0 and config["metrics"]["sentiment"]["mode"] == "trained"
    for loaded in (TextClassifier.load(tmp_path / "v1", encoder), TextClassifier.load(tmp_path / "v1")):
        assert loaded.encoder is encoder  # same resolved path: the process-wide encoder
        assert [c.name for c in loaded.controls] == ["sentiment", "topic", "extra"]
        assert {c: loaded.mode(c) for c in ("sentiment", "topic", "extra")} == {
            "sentiment": "trained", "topic": "trained", "extra": "zero_shot"}
        got = loaded.predict_proba(probe)
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
        assert loaded.metrics == clf.metrics and loaded.params == clf.params
