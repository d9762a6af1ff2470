"""A region task's score from all its candidates (`regions_images`), the `uncertainty` param of the region
backends (`regions_models.UNCERTAINTY`), and which candidates a writer shows."""
from __future__ import annotations

import numpy as np
import pytest

from backends.exceptions import BadRequest
from backends.labels import Control
from backends.regions_images import control_confidence, image_answers
from backends.regions_models import UNCERTAINTY
from backends.regions_writers import writer_for
from detection.types import Detection
from selection import MEASURES, names


def control(tag: str = "rectanglelabels", **attrs) -> Control:
    return Control(name="c", tag=tag, to_name="image", object_tag="image", value_key="image",
                   labels=["Cat", "Dog"], attrs=attrs)


def found(*scores: float, probs: list[list[float]] | None = None) -> list[tuple[str, Detection]]:
    return [("Cat", Detection("cat", s, (0, 0, 5, 5), class_probs=None if probs is None else np.array(probs[i])))
            for i, s in enumerate(scores)]


def test_borderline_candidates_score_below_confident_ones_and_below_nothing_found():
    lc = MEASURES["least_confidence"]
    confident = control_confidence(found(0.95, 0.9, 0.02), 0.1, lc)
    borderline = control_confidence(found(0.3, 0.12, 0.08, 0.06), 0.1, lc)
    nothing = control_confidence([], 0.1, lc)
    hidden_only = control_confidence(found(0.05, 0.04), 0.1, lc)
    assert nothing == 1.0 and borderline < hidden_only < nothing and borderline < confident
    assert 0 < borderline < 0.5 < confident < 1


def test_class_probabilities_are_read_by_the_measure():
    sure = control_confidence(found(0.9, probs=[[0.9, 0.01]]), 0.1, MEASURES["margin"])
    torn = control_confidence(found(0.9, probs=[[0.9, 0.85]]), 0.1, MEASURES["margin"])
    assert torn < sure
    # a candidate without probabilities (another model's) leaves the class term out for the image
    mixed = found(0.9, probs=[[0.9, 0.85]]) + found(0.9)
    assert control_confidence(mixed, 0.1, MEASURES["margin"]) == control_confidence(found(0.9, 0.9), 0.1, None)


def test_image_answers_take_the_least_confident_control():
    [a, b, c] = image_answers([[{"r": 1}], [], []], [None, "task 2: broken", None], [[0.8, 0.3], [0.9], []])
    assert a.score == pytest.approx(0.3) and a.result == [{"r": 1}]
    assert b.error == "task 2: broken" and b.score is None
    assert c.score == 0.0  # no model looked at it


def test_writers_show_candidates_from_their_threshold():
    writer = writer_for(control(model_score_threshold="0.5"))
    assert [d.score for _, d in writer.shown(found(0.7, 0.5, 0.49))] == [0.7, 0.5]


def test_uncertainty_param():
    boxes, outlines = writer_for(control()), writer_for(control("polygonlabels"))
    assert UNCERTAINTY.read({"uncertainty": " Margin "}) == "margin" and UNCERTAINTY.read({}) is None
    with pytest.raises(BadRequest, match="'uncertainty'.*kcenter"):
        UNCERTAINTY.read({"uncertainty": "most_wrong"})
    with pytest.raises(BadRequest, match="'uncertainty'"):
        UNCERTAINTY.read({"uncertainty": 3})
    assert UNCERTAINTY.measure({"uncertainty": "entropy"}, "margin", [boxes], "detection") is MEASURES["entropy"]
    assert UNCERTAINTY.measure({}, "margin", [boxes], "detection") is MEASURES["margin"]
    # segmentation models give no class probabilities: asked for, margin is refused with what can be had ...
    with pytest.raises(BadRequest, match="least_confidence") as e:
        UNCERTAINTY.measure({"uncertainty": "margin"}, "margin", [boxes, outlines], "detection")
    assert "kcenter" in str(e.value) and "class_balanced" not in str(e.value)
    # ... while the process default (one setting for every backend) falls back to the candidates' scores
    assert UNCERTAINTY.measure({}, "class_balanced", [outlines], "segmentation") is MEASURES["least_confidence"]
    assert UNCERTAINTY.measure({"uncertainty": "kcenter"}, "margin", [outlines], "x") is MEASURES["least_confidence"]
    assert set(names()) >= {"kcenter", "margin"}


def test_threshold_order_tag_then_params_then_learned_then_default():
    from backends.regions_writers import DEFAULT_THRESHOLD

    assert writer_for(control()).learned(None).threshold == DEFAULT_THRESHOLD
    assert writer_for(control()).learned(0.35).threshold == 0.35
    assert writer_for(control(), {"model_score_threshold": 0.2}).learned(0.35).threshold == 0.2
    assert writer_for(control(model_score_threshold="0.6"), {"model_score_threshold": 0.2}).learned(0.35).threshold \
        == 0.6
