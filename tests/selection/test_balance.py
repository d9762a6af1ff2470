from __future__ import annotations

import numpy as np

from selection import Pool
from selection.balance import class_balanced


def test_the_least_labeled_class_first_and_least_confident_within_it():
    predicted = np.array([0, 0, 0, 1, 1, 2])
    conf = np.array([0.9, 0.1, 0.5, 0.8, 0.3, 0.7])
    pool = Pool(confidence=conf, predicted=predicted, labeled_classes=[0, 0, 1])
    picks = class_balanced(pool, 4, np.random.default_rng(0))
    # class 2 has no label, then 1 (one label), then 1 and 2 are exhausted or level with 0
    assert picks[0] == 5 and picks[1] == 4
    assert picks[2] in {3, 1} and len(set(picks.tolist())) == 4


def test_a_class_nobody_predicts_is_skipped_and_predictions_come_from_probs():
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0]])
    pool = Pool(probs=probs, confidence=[0.8, 0.2, 0.6], labeled_classes=[1])
    assert class_balanced(pool, 3, np.random.default_rng(0)).tolist() == [1, 2, 0]
    assert len(class_balanced(Pool(predicted=np.zeros(0, dtype=int)), 2, np.random.default_rng(0))) == 0
