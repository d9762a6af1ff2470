from __future__ import annotations

import math

import numpy as np
import pytest

from selection.uncertainty import MEASURES, combine, entropy, least_confidence, margin

ALL = [least_confidence, margin, entropy]


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize("k", [2, 3, 7])
def test_uniform_is_zero_and_one_hot_is_one(strategy, k):
    probs = np.vstack([np.full(k, 1.0 / k), np.eye(k)[0]])
    np.testing.assert_allclose(strategy(probs), [0.0, 1.0], atol=1e-12)


def test_known_values():
    probs = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(least_confidence(probs), [(0.7 - 1 / 3) / (1 - 1 / 3)])
    np.testing.assert_allclose(margin(probs), [0.5])
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(entropy(probs), [1 - h / math.log(3)])


@pytest.mark.parametrize("strategy", ALL)
def test_more_peaked_rows_are_more_confident(strategy):
    probs = np.array([[0.34, 0.33, 0.33], [0.5, 0.3, 0.2], [0.8, 0.1, 0.1], [0.98, 0.01, 0.01]])
    conf = strategy(probs)
    assert conf.shape == (4,)
    assert np.all(np.diff(conf) > 0)
    # Label Studio shows lowest score first: the near-uniform row comes first.
    assert np.argsort(conf)[0] == 0


def test_strategies_can_disagree_on_order():
    # Same top class, different runner-up: margin cares, least confidence does not.
    probs = np.array([[0.5, 0.49, 0.01], [0.5, 0.25, 0.25]])
    assert least_confidence(probs)[0] == pytest.approx(least_confidence(probs)[1])
    assert margin(probs)[0] < margin(probs)[1]


@pytest.mark.parametrize("strategy", ALL)
def test_multi_label_row_is_its_least_confident_label(strategy):
    probs = np.array([[0.99, 0.01, 0.5], [0.99, 0.01, 0.9], [1.0, 0.0, 1.0]])
    conf = strategy(probs, multi_label=True)
    assert conf[0] == pytest.approx(0.0, abs=1e-12)  # one label at 0.5 is a coin flip
    assert 0 < conf[1] < 1
    assert conf[2] == pytest.approx(1.0)
    # The row's score equals that of its worst label alone.
    np.testing.assert_allclose(conf[1], strategy(np.array([[0.9]]), multi_label=True)[0])


def test_multi_label_does_not_normalise_rows():
    # Independent labels both very likely: confident, even though the row sums to 1.9.
    probs = np.array([[0.95, 0.95]])
    assert least_confidence(probs, multi_label=True)[0] == pytest.approx(0.9)
    assert least_confidence(probs)[0] == pytest.approx(0.0)


@pytest.mark.parametrize("strategy", ALL)
def test_edge_shapes(strategy):
    assert strategy(np.zeros((0, 3))).shape == (0,)
    np.testing.assert_array_equal(strategy(np.ones((2, 1))), [1.0, 1.0])  # one class: nothing to doubt
    np.testing.assert_array_equal(strategy(np.zeros((2, 0))), [1.0, 1.0])
    with pytest.raises(ValueError):
        strategy(np.array([0.5, 0.5]))


@pytest.mark.parametrize("strategy", ALL)
def test_bad_values_stay_in_range(strategy):
    probs = np.array([[np.nan, np.nan], [1.2, -0.2], [0.0, 0.0], [0.6, 0.6]])
    conf = strategy(probs)
    assert not np.isnan(conf).any()
    assert np.all((conf >= 0) & (conf <= 1))
    assert conf[0] == pytest.approx(0.0)  # no information: most uncertain
    assert conf[1] == pytest.approx(1.0)
    conf_ml = strategy(probs, multi_label=True)
    assert not np.isnan(conf_ml).any() and np.all((conf_ml >= 0) & (conf_ml <= 1))


def test_measures_by_name():
    assert MEASURES == {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}


def test_combine_takes_the_least_confident_control():
    a = np.array([0.9, 0.2, 0.5])
    b = np.array([0.1, 0.8, 0.5])
    np.testing.assert_array_equal(combine([a, b]), [0.1, 0.2, 0.5])
    np.testing.assert_array_equal(combine([a]), a)
    assert combine([]).shape == (0,)
    # A control without a prediction for a task (NaN) does not decide; no prediction at all gives 0.
    np.testing.assert_array_equal(combine([np.array([np.nan, np.nan]), np.array([0.7, np.nan])]), [0.7, 0.0])
    assert float(combine([0.3, 0.6])) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        combine([np.zeros(2), np.zeros(3)])
