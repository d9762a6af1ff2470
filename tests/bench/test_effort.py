"""The simulated annotator of choice tasks (bench/effort.py): confirming is cheaper than choosing, a wrong
pre-annotation dearer, and the times follow the cited operators."""
import math

import pytest

from bench.effort import CHOICE_COSTS, ChoiceCosts, Effort, choices, total

C = CHOICE_COSTS


def test_scratch_is_reading_deciding_searching_and_two_clicks():
    e = choices(None, ["NUM"], words=10, n_choices=6)
    expected = 60 * 10 / 238 + 1.35 + 0.15 * math.log2(7) + 2 * (1.1 + 0.2)
    assert e.scratch == pytest.approx(expected)
    assert e.assisted == pytest.approx(expected)  # nothing shown: nothing saved
    assert e.saved == 0.0


def test_confirming_a_right_choice_saves_the_search_and_a_click():
    e = choices(["NUM"], ["NUM"], words=10, n_choices=6)
    assert e.scratch - e.assisted == pytest.approx(C.search(6) + C.click())
    assert 0 < e.saved < 1


def test_a_wrong_choice_costs_more_than_scratch_by_the_judging():
    e = choices(["LOC"], ["NUM"], words=10, n_choices=6)
    assert e.assisted - e.scratch == pytest.approx(C.decide)
    assert e.saved < 0


def test_longer_texts_take_longer_and_save_a_smaller_share():
    short, long = choices(["a"], ["a"], 5, 2), choices(["a"], ["a"], 50, 2)
    assert long.scratch > short.scratch
    assert long.scratch - long.assisted == pytest.approx(short.scratch - short.assisted)
    assert long.saved < short.saved


def test_more_choices_take_longer_to_find():
    assert choices(None, ["a"], 10, 50).scratch > choices(None, ["a"], 10, 2).scratch


def test_multi_choice_toggles_each_difference():
    right = choices(["a", "b"], ["a", "b"], 10, 5, multi=True)
    one_off = choices(["a"], ["a", "b"], 10, 5, multi=True)
    two_off = choices(["a", "c"], ["a", "b"], 10, 5, multi=True)
    assert right.assisted < one_off.assisted < two_off.assisted
    assert two_off.assisted - one_off.assisted == pytest.approx(C.click())
    # from scratch every true choice is clicked
    assert choices(None, ["a", "b"], 10, 5, multi=True).scratch - choices(None, ["a"], 10, 5, multi=True).scratch \
        == pytest.approx(C.click())


def test_total_sums_times_not_savings():
    es = [choices(["a"], ["a"], 10, 2), choices(["b"], ["a"], 100, 2)]
    t = total(es)
    assert isinstance(t, Effort)
    assert t.assisted == pytest.approx(sum(e.assisted for e in es))
    assert t.saved == pytest.approx(1 - t.assisted / t.scratch)


@pytest.mark.parametrize("field", ["words_per_minute", "decide", "point", "press", "bits"])
def test_costs_reject_negative_and_nan(field):
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=field):
            ChoiceCosts(**{field: bad})
    with pytest.raises(ValueError, match="words_per_minute"):
        ChoiceCosts(words_per_minute=0)


def _square(x0: int, y0: int, size: int = 20, shape: tuple[int, int] = (64, 64)) -> "np.ndarray":
    import numpy as np

    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_masks_keep_fix_delete_and_trace():
    from bench.effort import MASK_COSTS as M, MaskCosts, masks

    truths = [("cat", _square(0, 0)), ("dog", _square(40, 40))]
    exact = masks([("cat", 0.9, _square(0, 0)), ("dog", 0.8, _square(40, 40))], truths, threshold=0.5)
    assert exact.assisted == 2 * M.verify and exact.scratch == 2 * M.trace and exact.saved > 0.9
    # an offset mask (IoU 0.6) is on the object but redone; a mask below the threshold is not shown: traced
    offset = masks([("cat", 0.9, _square(0, 5)), ("dog", 0.3, _square(40, 40))], truths, threshold=0.5)
    assert offset.assisted == M.verify + M.fix + M.trace
    # a mask where nothing is is deleted; with nothing to label nothing is saved
    stray = masks([("cat", 0.9, _square(20, 0, 10))], [], threshold=0.1)
    assert stray.assisted == M.delete and stray.scratch == 0 and stray.saved == 0.0
    # the wrong class is fixed (relabelled), not kept, whatever its IoU
    relabel = masks([("dog", 0.9, _square(0, 0))], truths[:1], threshold=0.1, costs=MaskCosts(fix=20.0))
    assert relabel.assisted == M.verify + 20.0
    with pytest.raises(ValueError, match="MaskCosts.trace"):
        MaskCosts(trace=float("nan"))
