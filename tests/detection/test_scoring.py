"""A detection task's confidence from all its candidate boxes: the expected F1 of its pre-annotation."""
from __future__ import annotations

import numpy as np
import pytest

from detection.scoring import class_certainty, image_confidence
from selection import entropy, least_confidence, margin


def test_an_image_with_nothing_above_the_floor_is_confidently_empty():
    assert image_confidence([], 0.5) == 1.0
    assert image_confidence([0.005, 0.001], 0.5, floor=0.01) == 1.0


def test_borderline_boxes_rank_before_a_correctly_empty_image_and_a_clear_one():
    empty = image_confidence([], 0.5)
    clear = image_confidence([0.95, 0.92, 0.03], 0.5)
    borderline = image_confidence([0.55, 0.45, 0.4], 0.5)
    assert borderline < clear < empty
    # nothing shown, but candidates just below the threshold: maybe not empty
    assert image_confidence([0.45, 0.4], 0.5) == pytest.approx(0.55 * 0.6)
    assert image_confidence([0.45, 0.4], 0.5) < image_confidence([0.05, 0.02], 0.5)


def test_expected_f1_by_hand():
    # shown: 0.9 (TP 0.9, FP 0.1); hidden: 0.2 (FN 0.2); 0.005 under the floor is ignored
    assert image_confidence([0.9, 0.2, 0.005], 0.5) == pytest.approx(1.8 / (1.8 + 0.1 + 0.2))
    assert image_confidence([1.0], 0.5) == 1.0
    assert image_confidence([0.0], 0.0, floor=0.0) == 0.0  # shown at threshold 0 and surely not there


def test_a_doubtful_class_lowers_the_score_and_each_measure_reads_it_differently():
    scores = [0.9]
    sure = np.array([[0.9, 0.01, 0.01]])
    torn = np.array([[0.5, 0.3, 0.2]])
    without = image_confidence(scores, 0.5)
    assert image_confidence(scores, 0.5, sure, least_confidence) < without
    assert image_confidence(scores, 0.5, torn, least_confidence) < image_confidence(scores, 0.5, sure, least_confidence)
    by_measure = [image_confidence(scores, 0.5, torn, m) for m in (least_confidence, margin, entropy)]
    assert len(set(np.round(by_measure, 6))) == 3
    # the class doubt of a hidden candidate does not matter: the annotator never sees its label
    assert (image_confidence([0.9, 0.2], 0.5, np.array([[0.9, 0.0, 0.0], [0.4, 0.3, 0.3]]), margin)
            == image_confidence([0.9, 0.2], 0.5, np.array([[0.9, 0.0, 0.0], [0.9, 0.0, 0.0]]), margin))


def test_class_certainty():
    probs = np.array([[0.6, 0.2, 0.2], [0.0, 0.0, 0.0], [0.3, 0.3, 0.0]])
    # least confidence put back on the probability scale is the top normalised probability
    assert class_certainty(probs, least_confidence) == pytest.approx([0.6, 1 / 3, 0.5])
    assert class_certainty(probs) == pytest.approx([0.6, 1 / 3, 0.5])
    assert class_certainty(probs, margin)[0] == pytest.approx(1 / 3 + 2 / 3 * 0.4)
    assert class_certainty(np.array([[0.7], [0.1]])).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="2-D"):
        class_certainty(np.array([0.5, 0.5]))


def test_class_probs_must_line_up_with_the_scores():
    with pytest.raises(ValueError, match=r"\(2, k\)"):
        image_confidence([0.9, 0.8], 0.5, np.ones((3, 4)), least_confidence)
