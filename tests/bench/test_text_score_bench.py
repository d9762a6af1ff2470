from __future__ import annotations

from bench.text_score_bench import keep_blocks


def test_a_partial_run_keeps_the_blocks_it_did_not_measure_and_replaces_the_others() -> None:
    earlier = {"sizes": {"24": {"run": "old"}, "200": {"run": "old"}, "300": {"run": "old"}},
               "many_labels": {"note": "before self-training", "1000": {"run": "old"}, "5452": {"run": "old"}}}
    fresh = {"sizes": {"300": {"run": "new"}, "100": {"run": "new"}}, "many_labels": {"5452": {"run": "new"}}}
    keep_blocks(fresh, earlier, sizes=[100, 300], many=["all"], n_train=5452)
    assert list(fresh["sizes"]) == ["24", "100", "200", "300"]
    assert [b["run"] for b in fresh["sizes"].values()] == ["old", "new", "old", "new"]
    # what was said of the kept blocks stays with them, not with the new ones
    assert fresh["many_labels"] == {"1000": {"run": "old", "note": "before self-training"}, "5452": {"run": "new"}}
