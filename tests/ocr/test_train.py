"""The publish guard: corrections are published only when held-out CER is not worse than the served version's;
too little data is refused; a calibration is kept only when it predicts held-out lines better."""
from __future__ import annotations

import random

import pytest

from ocr.calibration import Calibration, brier, fit
from ocr.corrections import Corrections, Rule
from ocr.model import OcrModel
from ocr.train import Pair, Sample, TrainingError, train


def _samples(n: int, seed: int = 0) -> list[Sample]:
    """Images whose product code is always misread the same way; other lines are read right."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pairs = [Pair("code 00110 shelf", 0.7, "code OO1l0 shelf"), Pair("open today", 0.98, "open today")]
        if rng.random() < 0.5:
            pairs.append(Pair("exit 4", 0.95, "exit 4"))
        out.append(Sample(f"task-{i}", pairs))
    return out


def test_a_correction_that_helps_held_out_images_is_published():
    model, metrics, publish, reason = train(_samples(12))
    assert publish, reason
    assert metrics["cer_after"] < metrics["cer_before"] == metrics["cer_base"]
    assert model.corrections.apply("code 00110") == "code OO1l0"
    assert metrics["n_heldout"] == 3 and metrics["n_train"] == 9


def test_a_served_version_as_good_is_not_replaced_by_nothing():
    served = OcrModel(Corrections([Rule("00110", "OO1l0", 9)]))
    right = [Sample(f"t{i}", [Pair("open today", 0.9, "open today")]) for i in range(6)]
    _, metrics, publish, reason = train(right, served)
    assert not publish and "teach nothing" in reason


def test_a_version_worse_than_the_served_one_is_kept_back():
    served = OcrModel(Corrections([Rule("00110", "OO1l0", 9)]))
    # these annotators write the code as read: what the served rule does is now wrong
    samples = [Sample(f"t{i}", [Pair("code 00110 shelf", 0.9, "code 00110 shelf"),
                                Pair("Kube flow", 0.9, "Kubeflow")]) for i in range(8)]
    _, metrics, publish, reason = train(samples, served)
    assert metrics["cer_before"] > metrics["cer_after"]  # the candidate fixes what the served rule broke
    assert publish, reason
    worse = [Sample(f"t{i}", [Pair("code 00110 shelf", 0.9, "code OO1l0 shelf")]) for i in range(2)] + \
        [Sample(f"u{i}", [Pair("open", 0.9, "open")]) for i in range(2)]
    _, metrics, publish, reason = train(worse, served)  # one example of the rule to learn from: under min_count
    assert metrics["cer_after"] > metrics["cer_before"] and not publish and "worse" in reason


def test_too_few_corrected_images_are_refused():
    with pytest.raises(TrainingError, match="at least 3"):
        train(_samples(2))
    with pytest.raises(TrainingError):
        train([Sample(f"t{i}", [Pair("a", 0.5, "  ")]) for i in range(5)])


def test_calibration_follows_what_was_right():
    rng = random.Random(0)
    conf = [rng.uniform(0.5, 1.0) for _ in range(400)]
    right = [rng.random() < (c - 0.5) * 2 for c in conf]  # 0.5 is never right, 1.0 always
    cal = fit(conf, right)
    assert cal is not None and cal(0.55) < 0.3 < 0.7 < cal(0.98)
    assert brier([cal(c) for c in conf], right) < brier(conf, right)
    assert fit(conf[:10], right[:10]) is None and fit(conf, [True] * len(conf)) is None
    assert Calibration()(0.8) == pytest.approx(0.8)


def test_a_version_is_saved_and_loaded(tmp_path):
    model, metrics, _, _ = train(_samples(12))
    model.calibration = Calibration(2.0, -1.0)
    model.save(tmp_path)
    again = OcrModel.load(tmp_path)
    assert again.corrections.to_json() == model.corrections.to_json()
    assert again.calibration == model.calibration and again.metrics == metrics
