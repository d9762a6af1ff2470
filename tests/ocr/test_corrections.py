"""Corrections learned from (recognized, corrected) lines: recurring span rules, their precision guard, the
lexicon of written-in words, and the versions' files."""
from __future__ import annotations

from ocr.corrections import Corrections, Rule, learn, load, save


def test_a_recurring_correction_becomes_a_rule():
    pairs = [("SKU 00110 in stock", "SKU OO1l0 in stock"), ("order 00110 today", "order OO1l0 today"),
             ("Kube flow pipelines", "Kubeflow pipelines"), ("run Kube flow", "run Kubeflow"),
             ("once wrng", "once wrong")]
    learned = learn(pairs)
    assert {(r.wrong, r.right) for r in learned.rules} == {("00110", "OO1l0"), ("Kube flow", "Kubeflow")}
    assert learned.apply("new 00110 and Kube flow here") == "new OO1l0 and Kubeflow here"
    assert learned.apply("100110 stays") == "100110 stays"  # whole tokens only


def test_a_span_mostly_read_right_is_not_rewritten():
    pairs = [("total 10", "total 1O"), ("total 10", "total 1O"), ("price 10", "price 10"), ("item 10", "item 10"),
             ("room 10", "room 10"), ("10 left", "10 left")]
    assert learn(pairs).rules == []  # "10" was corrected in 2 of its 6 places


def test_the_lexicon_fixes_near_misses_of_written_in_words_only():
    learned = learn([("Zyphlexa sale", "Zyphlexa sale"), ("Quilbrook road", "Quillbrook road"),
                     ("Quillbr0ok way", "Quillbrook way")], min_count=5)
    assert learned.rules == [] and learned.lexicon == ["Quillbrook"]
    assert learned.apply("to Quilibrook,") == "to Quillbrook,"  # one edit away, punctuation kept
    assert learned.apply("Zyphlexa road") == "Zyphlexa road"  # a word the annotators wrote is kept
    assert learned.apply("Qxxxxbrook") == "Qxxxxbrook"  # too far
    learned.use_lexicon = False
    assert learned.apply("to Quilibrook,") == "to Quilibrook,"


def test_two_equally_near_words_leave_the_token_alone():
    tie = Corrections(lexicon=["Marlow", "Barlow"])
    assert tie.apply("Carlow") == "Carlow"
    assert tie.apply("Marlov") == "Marlow"


def test_corrections_survive_their_file(tmp_path):
    learned = Corrections([Rule("0O", "OO", 3)], ["Kubeflow"], ["pipelines"], use_lexicon=False)
    save(learned, tmp_path / "c.json")
    again = load(tmp_path / "c.json")
    assert again.to_json() == learned.to_json() and again.apply("0O x") == "OO x"
