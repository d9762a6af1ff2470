"""The simulated loop's pure parts (bench/loop_bench.py, bench/loop_boxes.py): the show threshold, the summary
against the baseline, the strategy compared, what is served after a fit, the box orders."""
import json

import numpy as np
import pytest

from bench.loop_bench import FALLBACK_BEST, _served_after, arms, best_of_study, show_threshold, summarize
from bench.loop_boxes import ORDERS, box_loop, threshold_report
from detection.types import Detection


def test_show_threshold_hides_the_unsure_wrong_ones():
    # confident and right, unsure and wrong: showing only from 0.4 keeps the gain and drops the loss
    shown = [(0.9, True, 10)] * 5 + [(0.3, False, 10)] * 5
    r = show_threshold(shown, k=6)
    assert r["best"] == 0.4  # the lowest threshold above every wrong one
    assert r["saving_at_best"] > r["saving_showing_all"]
    assert r["saving"][0] == r["saving_showing_all"]
    assert r["saving"][3] == r["saving_showing_all"]  # from 0.3 the wrong ones are still shown
    assert r["saving"][-1] == r["saving_at_best"]  # from 0.9 the right ones still are
    assert show_threshold([(0.95, True, 10)] * 3, k=2)["best"] == 0.0  # all right: show everything


def _run(labels_rounds, assisted, scratch, acc):
    return {"rounds": [{"labels": n, "assisted_s": a, "scratch_s": s, "accuracy": c,
                        "batch_preannotation_accuracy": 1.0, "rejected": False}
                       for n, a, s, c in zip(labels_rounds, assisted, scratch, acc)], "shown": []}


def test_summarize_against_the_baseline_and_the_same_tasks():
    base = _run([10, 20], [90, 90], [100, 100], [0.5, 0.6])
    ranked = _run([10, 20], [50, 50], [120, 120], [0.6, 0.7])  # longer texts, but most confirmed
    s = summarize({"random_scratch": [base], "random": [base], "x": [ranked]})
    assert s["random_scratch"]["saving_vs_baseline"]["mean"] == [0.0, 0.0]
    assert s["random"]["saving_same_tasks"]["mean"] == [pytest.approx(0.1), pytest.approx(0.1)]
    assert s["x"]["cumulative_s"]["mean"] == [50, 100]
    assert s["x"]["saving_vs_baseline"]["mean"] == [0.5, 0.5]
    assert s["x"]["saving_same_tasks"]["mean"][1] == pytest.approx(1 - 100 / 240, abs=1e-4)
    assert s["x"]["accuracy"]["mean"] == [0.6, 0.7]


def test_best_of_study_reads_the_ranking_study(tmp_path):
    assert best_of_study(tmp_path / "missing.json") == FALLBACK_BEST
    study = {"results": {"a": {"strategies": {"random": {"auc_minus_random": 0},
                                               "badge": {"auc_minus_random": 0.02},
                                               "margin": {"auc_minus_random": 0.01},
                                               "hybrid_kcenter": {"auc_minus_random": 0.05}}},
                          "b": {"strategies": {"badge": {"auc_minus_random": 0.0},
                                               "margin": {"auc_minus_random": 0.0}}}}}
    (tmp_path / "s.json").write_text(json.dumps(study))
    assert best_of_study(tmp_path / "s.json") == "badge"
    assert set(arms("hybrid", "badge")) == {"random_scratch", "random", "hybrid (default)",
                                            "badge (best of the ranking study)"}
    assert set(arms("badge", "badge", extra=("margin", "badge"))) == {
        "random_scratch", "random", "badge (default, best of the ranking study)", "margin"}


def test_a_fit_the_guard_rejects_is_not_served():
    served, candidate = object(), object()
    assert _served_after(candidate, served, {"l": {"mode": "trained", "guard": {"worse": False}}}, "l") is candidate
    assert _served_after(candidate, served, {"l": {"mode": "trained", "guard": {"worse": True}}}, "l") is served
    assert _served_after(candidate, served, {"l": {"mode": "zero_shot", "guard": None}}, "l") is served


def test_box_loop_ranks_the_images_the_model_gets_wrong_first():
    right = ([Detection("cat", 0.9, (0, 0, 10, 10))], [("cat", (0, 0, 10, 10))])
    wrong = ([Detection("dog", 0.4, (50, 50, 60, 60))], [("cat", (0, 0, 10, 10))])
    images = [right] * 6 + [wrong] * 2
    scores = [0.9] * 6 + [0.2] * 2
    out = box_loop(images, scores, threshold=0.1, batch=2, seeds=3)
    ranked, rand = out[ORDERS[0]], out[ORDERS[1]]
    assert ranked["first_batch_saving"] < 0  # the two wrong images first: a deletion and a drawing each
    assert ranked["images"] == [2, 4, 6, 8]
    assert ranked["cumulative_saving_mean"][-1] == pytest.approx(rand["cumulative_saving_mean"][-1])
    assert threshold_report(images)["best"] == 0.45  # hides the wrong 0.4 box, shows the right 0.9 ones
