"""Choosing and learning the score threshold that costs annotators least."""
from __future__ import annotations

import pytest

from detection.effort import BoxCosts
from detection.threshold import THRESHOLDS, choose_threshold, effort_curve, learn_threshold, outcome_at
from detection.types import Detection


def _image(k: int, real: float = 0.3, false: float = 0.15):
    """Two real objects the model scores `real` and one false box it scores `false`, placed apart by k."""
    x = 100.0 * k
    truths = [("cat", (x, 0.0, x + 10, 10.0)), ("dog", (x + 20, 0.0, x + 30, 10.0))]
    dets = [Detection("cat", real, (x, 0.0, x + 10, 10.0)), Detection("dog", real, (x + 20, 0.0, x + 30, 10.0)),
            Detection("cat", false, (x + 60, 60.0, x + 70, 70.0))]
    return dets, truths


def test_outcome_at_shows_only_boxes_at_or_above_the_threshold():
    dets, truths = _image(0)
    assert outcome_at(dets, truths, 0.15).deleted == 1
    assert outcome_at(dets, truths, 0.2).deleted == 0 and outcome_at(dets, truths, 0.2).correct == 2
    assert outcome_at(dets, truths, 0.35).drawn == 2


def test_the_cheapest_threshold_lies_between_false_and_real_scores():
    images = [_image(k) for k in range(5)]
    choice = choose_threshold(images)
    assert choice.threshold == 0.2  # 0.2..0.3 all keep the real boxes and hide the false one: the lowest wins ties
    curve = dict(zip(choice.thresholds, choice.seconds))
    assert curve[0.2] == pytest.approx(5 * 2 * 1.6)
    assert curve[0.15] == pytest.approx(5 * (2 * 1.6 + 1.0))  # the false box shown: one deletion per image
    assert curve[0.35] == pytest.approx(5 * 2 * 7.0)  # real boxes hidden: drawn
    assert choice.scratch_seconds == 5 * 2 * 7.0 and choice.objects == 10 and choice.images == 5
    assert choice.saving() == pytest.approx(1 - 1.6 / 7.0)
    assert choice.saving(0.35) == pytest.approx(0.0)
    assert effort_curve(images).shape == (5, len(THRESHOLDS))


def test_costs_move_the_choice():
    images = [_image(k, real=0.3, false=0.6) for k in range(3)]  # the false box outscores the real ones
    # deleting is cheap next to drawing: show everything down to the real boxes
    assert choose_threshold(images).threshold == 0.05
    # deleting dearer than drawing both objects: hide everything, the false box and the real ones with it
    assert choose_threshold(images, costs=BoxCosts(draw=0.5, delete=10.0)).threshold == 0.65


def test_learn_threshold_keeps_the_default_until_enough_objects():
    few = [_image(k) for k in range(3)]  # 6 objects
    assert learn_threshold(few, default=0.1) == 0.1
    assert learn_threshold(few, default=0.1, min_objects=6) == 0.2
    assert learn_threshold([_image(k) for k in range(49)], default=0.1) == 0.1  # 98 objects
    assert learn_threshold([_image(k) for k in range(50)], default=0.1) == 0.2


def test_bad_input():
    with pytest.raises(ValueError):
        choose_threshold([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_threshold([_image(0)], thresholds=[0.5, 1.5])
