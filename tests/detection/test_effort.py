"""The simulated annotator's box model: IoU, matching predictions to the final boxes, seconds and F1."""
from __future__ import annotations

import numpy as np
import pytest

from detection.effort import BOX_COSTS, BoxCosts, BoxOutcome, box_iou, box_outcome, f1, match_boxes, scratch_seconds

A = (0.0, 0.0, 10.0, 10.0)


def test_box_iou_values_and_reversed_corners():
    iou = box_iou([A, (5.0, 0.0, 15.0, 10.0), (20.0, 20.0, 30.0, 30.0)], [(10.0, 10.0, 0.0, 0.0)])
    assert iou[:, 0] == pytest.approx([1.0, 50.0 / 150.0, 0.0])
    assert box_iou([], [A]).shape == (0, 1)
    assert box_iou([(1.0, 1.0, 1.0, 5.0)], [(1.0, 1.0, 1.0, 5.0)])[0, 0] == 0.0  # no area: no overlap, no NaN


def test_match_correct_fix_wrong_class_and_false():
    truths = ["cat", "dog", "car"], [A, (20.0, 0.0, 30.0, 10.0), (40.0, 0.0, 50.0, 10.0)]
    preds = (["cat", "dog", "dog", "cat"],
             [(0.0, 0.0, 10.0, 9.0),      # cat on the cat, IoU 0.9: correct
              (25.0, 0.0, 35.0, 10.0),    # dog shifted half off the dog, IoU 1/3: fixed
              (40.0, 0.0, 50.0, 10.0),    # dog on the car, IoU 1: relabelled, fixed
              (80.0, 80.0, 90.0, 90.0)])  # nothing there: deleted
    target, correct = match_boxes(*preds, *truths)
    assert target.tolist() == [0, 1, 2, -1]
    assert correct.tolist() == [True, False, False, False]
    assert box_outcome(*preds, *truths) == BoxOutcome(correct=1, fixed=2, deleted=1, drawn=0)


def test_a_true_box_is_claimed_once_and_missed_ones_are_drawn():
    # two predictions on one cat: the first (higher score) keeps it, the duplicate is deleted; the dog is drawn
    outcome = box_outcome(["cat", "cat"], [A, (0.0, 0.0, 10.0, 9.5)], ["cat", "dog"], [A, (50.0, 50.0, 60.0, 60.0)])
    assert outcome == BoxOutcome(correct=1, fixed=0, deleted=1, drawn=1)
    assert box_outcome([], [], ["cat"], [A]) == BoxOutcome(drawn=1)
    assert box_outcome(["cat"], [A], [], []) == BoxOutcome(deleted=1)


def test_seconds_use_the_cited_costs():
    assert (BOX_COSTS.draw, BOX_COSTS.verify, BOX_COSTS.fix, BOX_COSTS.delete) == (7.0, 1.6, 3.0, 1.0)
    outcome = BoxOutcome(correct=2, fixed=1, deleted=3, drawn=1)
    assert outcome.seconds() == pytest.approx(2 * 1.6 + 3.0 + 3 * 1.0 + 7.0)
    assert outcome.seconds(BoxCosts(draw=10.0, verify=0.0, fix=0.0, delete=0.0)) == 10.0
    assert (outcome + outcome).seconds() == pytest.approx(2 * outcome.seconds())
    assert scratch_seconds(3) == 21.0
    with pytest.raises(ValueError, match="BoxCosts.delete"):
        BoxCosts(delete=-1.0)
    with pytest.raises(ValueError, match="BoxCosts.draw"):
        BoxCosts(draw=float("nan"))


def test_f1_of_a_pre_annotation():
    assert f1(BoxOutcome()) == 1.0  # nothing predicted, nothing to find
    assert f1(BoxOutcome(drawn=2)) == 0.0
    assert f1(BoxOutcome(deleted=1)) == 0.0
    # 2 right of 4 shown, 3 objects (2 right + 1 fixed): 2*2 / (4 + 3)
    assert f1(BoxOutcome(correct=2, fixed=1, deleted=1)) == pytest.approx(4 / 7)
    assert np.isclose(f1(BoxOutcome(correct=3)), 1.0)
