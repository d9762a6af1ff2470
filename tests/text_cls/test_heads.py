from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from text_cls.heads import fit_logistic, fit_multi, fit_single


def _data(n: int = 120, d: int = 8, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=(d, k)) + rng.normal(scale=2.0, size=(n, k))).argmax(axis=1)
    return X, y


def test_plain_solver_matches_sklearn() -> None:
    X, y = _data()
    W, b, beta = fit_logistic(X, np.eye(3)[y], None, C=0.5, binary=False)
    ref = LogisticRegression(C=0.5, max_iter=5000, tol=1e-10).fit(X, y)
    assert beta == 0.0
    # Softmax intercepts are defined up to a shift: compare centred.
    np.testing.assert_allclose(W, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-3)
    yb = (y == 0).astype(float)
    w, b1, _ = fit_logistic(X, yb, None, C=0.5, binary=True)
    ref = LogisticRegression(C=0.5, max_iter=5000, tol=1e-10).fit(X, yb)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-3)
    np.testing.assert_allclose(b1, ref.intercept_, atol=1e-3)


def test_offset_weight_follows_how_useful_the_offset_is() -> None:
    X, y = _data(n=60)
    rng = np.random.default_rng(1)
    good = 3.0 * np.eye(3)[y] + rng.normal(scale=0.5, size=(60, 3))  # logits that mostly know the answer
    noise = rng.normal(scale=3.0, size=(60, 3))
    _, _, beta_good = fit_logistic(X, np.eye(3)[y], good, C=1.0, binary=False)
    _, _, beta_noise = fit_logistic(X, np.eye(3)[y], noise, C=1.0, binary=False)
    assert beta_good > 0.8 and abs(beta_noise) < 0.3


def test_heads_predict_in_label_space() -> None:
    X, y = _data()
    y = np.where(y == 1, 3, y)  # labels 0, 2, 3 of 5: 1 and 4 unseen
    zs = np.zeros((len(X), 5))
    for head in (fit_single(X, y, zs, C=1.0), fit_single(X, y, None, C=1.0)):
        p = head.proba(X, zs)
        assert p.shape == (len(X), 5)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert (p[:, [1, 4]] == 0).all()
        assert (p.argmax(axis=1) == y).mean() > 0.6
    two = fit_single(X, (y == 0).astype(int), None, C=1.0)  # two classes: sklearn's single logit, expanded
    assert two.coef.shape == (2, X.shape[1])
    Y = np.stack([y == 0, y == 3, np.zeros(len(y), bool), np.ones(len(y), bool)], axis=1).astype(int)
    zs = np.full((len(X), 4), -2.0)
    head = fit_multi(X, Y, zs, C=1.0)
    assert head.classes.tolist() == [0, 1, 3]
    p = head.proba(X, zs)
    np.testing.assert_allclose(p[:, 2], 1 / (1 + np.exp(2.0)))  # never chosen: zero-shot
    assert (p[:, 3] > 0.9).all()  # always chosen: a constant


def test_cross_validation_survives_a_class_seen_once():
    from text_cls.heads import cross_validate

    rng = np.random.default_rng(0)
    y = np.array([0] * 14 + [1] * 15 + [2])
    embeddings = rng.normal(size=(30, 8)) + np.eye(3)[y] @ rng.normal(size=(3, 8)) * 3
    m = cross_validate(embeddings, np.zeros((30, 3)), y, False, 1.0, False, 0)
    assert m["cv_folds"] == 5 and m["cv_accuracy"] is not None and m["cv_accuracy"] < 1.0
