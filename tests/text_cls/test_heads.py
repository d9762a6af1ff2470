from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from text_cls.heads import fit_logistic, fit_multi, fit_single, folds, out_of_fold, score, select
from text_cls.zero_shot import sigmoid, softmax


def _data(n: int = 120, d: int = 8, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=(d, k)) + rng.normal(scale=2.0, size=(n, k))).argmax(axis=1)
    return X, y


def test_plain_solver_matches_sklearn() -> None:
    X, y = _data()
    W, b = fit_logistic(X, np.eye(3)[y], None, C=0.5, binary=False)
    ref = LogisticRegression(C=0.5, max_iter=5000, tol=1e-10).fit(X, y)
    # Softmax intercepts are defined up to a shift: compare centred.
    np.testing.assert_allclose(W, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-3)
    yb = (y == 0).astype(float)
    w, b1 = fit_logistic(X, yb, None, C=0.5, binary=True)
    ref = LogisticRegression(C=0.5, max_iter=5000, tol=1e-10).fit(X, yb)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(b1, ref.intercept_, atol=1e-3)


def test_offset_is_added_to_the_logits() -> None:
    # A fixed offset that already separates the classes leaves the head little to learn.
    X, y = _data(n=60)
    offset = 5.0 * np.eye(3)[y]
    W, b = fit_logistic(X, np.eye(3)[y], offset, C=1.0, binary=False)
    W0, _ = fit_logistic(X, np.eye(3)[y], None, C=1.0, binary=False)
    assert np.linalg.norm(W) < 0.5 * np.linalg.norm(W0)
    assert ((X @ W.T + b + offset).argmax(axis=1) == y).all()


def test_heads_predict_in_label_space_and_unseen_labels_keep_zero_shot() -> None:
    X, y = _data()
    y = np.where(y == 1, 3, y)  # labels 0, 2, 3 of 5: 1 and 4 unseen
    rng = np.random.default_rng(2)
    zs = rng.normal(size=(len(X), 5))
    for head in (fit_single(X, y, zs, C=1.0, prior_weight=0.3), fit_single(X, y, None, C=1.0)):
        p = head.proba(X, zs)
        assert p.shape == (len(X), 5)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        np.testing.assert_allclose(p[:, [1, 4]], softmax(zs)[:, [1, 4]])  # zero-shot's share, untouched
        seen = p[:, [0, 2, 3]].argmax(axis=1)
        assert (np.array([0, 2, 3])[seen] == y).mean() > 0.6
    two = fit_single(X, (y == 0).astype(int), None, C=1.0)
    assert two.coef.shape == (2, X.shape[1])
    Y = np.stack([y == 0, y == 3, np.zeros(len(y), bool), np.ones(len(y), bool)], axis=1).astype(int)
    zs = np.full((len(X), 4), -2.0)
    head = fit_multi(X, Y, zs, C=1.0, prior_weight=1.0)
    assert head.classes.tolist() == [0, 1, 3]
    p = head.proba(X, zs)
    np.testing.assert_allclose(p[:, 2], sigmoid(np.array(-2.0)))  # never chosen: zero-shot
    assert (p[:, 3] > 0.9).all()  # always chosen: a constant


def test_a_head_of_two_labels_still_predicts_the_other_two_where_zero_shot_did() -> None:
    # 4 labels; zero-shot knows all four fairly well; the labels only show 0 and 1.
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16)) * 2
    truth = rng.integers(0, 4, size=400)
    X = centers[truth] + rng.normal(size=(400, 16))
    zs = 3.0 * np.eye(4)[truth] + rng.normal(scale=1.0, size=(400, 4))
    train = np.flatnonzero(truth < 2)[:12]
    head = fit_single(X[train], truth[train], zs[train], C=10.0, prior_weight=1.0)
    predicted = head.proba(X, zs).argmax(axis=1)
    zero_shot = zs.argmax(axis=1)
    for label in (2, 3):
        rows = truth == label
        # Only where zero-shot was unsure can the head's concentrated share of the rest outweigh it.
        assert (predicted[rows] == label).mean() >= (zero_shot[rows] == label).mean() - 0.1 > 0.5  # 0.92, 0.97
        sure = rows & (softmax(zs)[:, label] > 0.6)
        assert (predicted[sure] == label).all()


def test_folds_survive_a_class_seen_once() -> None:
    y = np.array([0] * 14 + [1] * 15 + [2])
    splits = folds(y, False, 0)
    assert len(splits) == 5
    assert sorted(np.concatenate([test for _, test in splits]).tolist()) == list(range(30))
    assert folds(np.array([0, 0, 1, 2]), False, 0) == []  # one class repeated: no estimate


def test_selection_trusts_zero_shot_only_as_far_as_the_folds_show() -> None:
    X, y = _data(n=60, k=3, seed=3)
    rng = np.random.default_rng(1)
    good = 4.0 * np.eye(3)[y] + rng.normal(scale=0.5, size=(60, 3))  # logits that mostly know the answer
    noise = rng.normal(scale=4.0, size=(60, 3))
    splits = folds(y, False, 0)
    _, w_good, s_good, _ = select(X, good, y, False, splits)
    _, w_noise, s_noise, _ = select(X, noise, y, False, splits)
    assert w_good >= 0.3 and w_noise <= 0.1
    plain = score(out_of_fold(X, noise, y, False, splits, 1.0, 0.0), y, False)
    assert s_noise["log_loss"] <= plain["log_loss"]  # never worse than plain logistic regression on the folds
    assert s_good["accuracy"] > s_noise["accuracy"]
