from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from text_cls import DEFAULT_PARAMS, ControlSpec
from text_cls.self_training import most_confident, pseudo_labels, summary, wanted


def test_most_confident_is_balanced_over_the_used_labels():
    proba = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.95, 0.05, 0.0], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1],
                      [0.0, 0.1, 0.9]])
    # label 2 is chosen by row 5 but no answer uses it: it gets no pseudo-labels
    assert most_confident(proba, np.array([0, 1]), budget=4) == {2: 0, 0: 0, 3: 1, 4: 1}
    # a budget of 2 keeps the surest of each; a label chosen by fewer rows than its share gives what it has
    assert most_confident(proba, np.array([0, 1]), budget=2) == {2: 0, 3: 1}
    assert most_confident(proba, np.array([0, 2]), budget=6) == {2: 0, 0: 0, 1: 0, 5: 2}
    assert most_confident(proba, np.array([0, 1]), budget=1) == {}


def _teacher(probas: dict[str, np.ndarray], controls: list[ControlSpec], heads: set[str]):
    return SimpleNamespace(controls=controls, heads={name: object() for name in heads},
                           predict_proba=lambda texts: {k: v[: len(texts)] for k, v in probas.items()})


def test_pseudo_labels_per_single_choice_control_and_budget():
    a, b, m = ControlSpec("a", ["x", "y"]), ControlSpec("b", ["u", "v"]), ControlSpec("m", ["p", "q"], multi=True)
    rng = np.random.default_rng(0)
    pa, pb = rng.dirichlet([1, 1], 40), rng.dirichlet([1, 1], 40)
    teacher = _teacher({"a": pa, "b": pb, "m": rng.random((40, 2))}, [a, b, m], {"a", "b", "m"})
    data = {"a": (np.arange(4), np.array([0, 1, 0, 1])), "b": (np.arange(4), np.array([0, 1, 1, 0])),
            "m": (np.arange(4), np.ones((4, 2)))}
    params = {**DEFAULT_PARAMS, "self_training_multiple": 2, "self_training_max": 1000}
    rows, labels = pseudo_labels(teacher, [f"t{i}" for i in range(40)], data, {"a": True, "b": True, "m": True},
                                 params)
    # multi choice gets none; each single control gets (2 x 4 answers) / 2 controls = 4, 2 per label
    assert set(labels) == {"a", "b"} and rows == sorted(rows)
    for name, p in (("a", pa), ("b", pb)):
        got = {r: int(y) for r, y in zip(rows, labels[name]) if y >= 0}
        assert sorted(np.bincount(list(got.values()), minlength=2)) == [2, 2]
        for label in (0, 1):
            mine = [r for r, y in got.items() if y == label]
            chose = np.flatnonzero(p.argmax(1) == label)
            assert sorted(mine) == sorted(chose[np.argsort(-p[chose].max(1))][:2].tolist())
    # self_training_max caps the total
    rows, _ = pseudo_labels(teacher, [f"t{i}" for i in range(40)], data, {"a": True, "b": True, "m": True},
                            {**params, "self_training_max": 4})
    assert len(rows) <= 4
    # a control without a head (or not eligible) gets none
    assert pseudo_labels(_teacher({"a": pa}, [a], set()), ["t"] * 40, data, {"a": True}, params) == ([], {})
    assert pseudo_labels(teacher, ["t"] * 40, data, {"a": False, "b": False, "m": True}, params) == ([], {})


def test_wanted_and_summary():
    assert wanted(DEFAULT_PARAMS, ["open"]) and not wanted(DEFAULT_PARAMS, [])
    assert not wanted({**DEFAULT_PARAMS, "self_training": False}, ["open"])
    assert not wanted({**DEFAULT_PARAMS, "self_training_max": 0}, ["open"])
    assert summary(ControlSpec("a", ["x", "y", "z"]), np.array([0, 2, 2, -1])) == {"x": 1, "z": 2}
