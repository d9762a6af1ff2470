"""The transcript effort model (pure): listening once, then typing every word or fixing each word edit."""
from __future__ import annotations

import pytest

from asr.effort import TranscriptCosts, assisted_seconds, scratch_seconds
from asr.metrics import word_edits


def test_word_edits_count_substitutions_deletions_and_insertions():
    assert word_edits("the cat sat", "The cat, sat.") == 0  # case and punctuation do not count
    assert word_edits("the cat sat", "a cat sat down") == 2
    assert word_edits("the cat sat", "") == 3 and word_edits("", "noise words") == 2


def test_correcting_beats_typing_below_the_break_even_error_rate():
    costs = TranscriptCosts(listen=1.0, type_word=1.0, edit_word=4.0)
    ref = " ".join(["word"] * 20)
    assert scratch_seconds(ref, 8.0, costs) == pytest.approx(8 + 20)
    assert assisted_seconds(ref, ref, 8.0, costs) == pytest.approx(8)  # right: listen and confirm
    four_wrong = " ".join(["word"] * 16 + ["bird"] * 4)
    assert assisted_seconds(ref, four_wrong, 8.0, costs) == pytest.approx(8 + 16)  # 20 % WER: still cheaper
    six_wrong = " ".join(["word"] * 14 + ["bird"] * 6)
    assert assisted_seconds(ref, six_wrong, 8.0, costs) > scratch_seconds(ref, 8.0, costs)  # 30 %: dearer
    assert assisted_seconds(ref, "", 8.0, costs) == scratch_seconds(ref, 8.0, costs)  # nothing shown: typed


def test_costs_must_be_non_negative():
    with pytest.raises(ValueError, match="edit_word"):
        TranscriptCosts(edit_word=-1)
