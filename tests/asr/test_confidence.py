"""The confidence arithmetic (pure): a segment's from its token probabilities, else its word probabilities, else its
decoding window's average log-probability; a file's from its least certain segment."""
from __future__ import annotations

import math

import pytest

from asr.confidence import (file_confidence, segment_confidence, sequence_confidence, window_confidence)


def test_sequence_confidence_is_the_product_times_speech():
    assert sequence_confidence([0.9, 0.5], 0.2) == pytest.approx(0.9 * 0.5 * 0.8)
    assert sequence_confidence([1.0] * 500, 0.0) == pytest.approx(1.0)
    # a long passage of likely tokens is less certain as a whole than a short one
    assert sequence_confidence([0.99] * 100, 0.0) < sequence_confidence([0.99] * 10, 0.0)
    # underflow gives 0, never NaN; bad numbers count as no confidence
    assert sequence_confidence([1e-30] * 50, 0.0) == 0.0
    assert sequence_confidence([float("nan"), 0.9], 0.0) == pytest.approx(0.9e-12)
    assert sequence_confidence([0.9], float("nan")) == 0.0
    assert sequence_confidence([0.9], 1.5) == 0.0 and sequence_confidence([1.5], -1.0) == 1.0


def test_segment_confidence_prefers_tokens_then_words_then_the_window():
    assert segment_confidence(-0.1, 0.0, token_probs=[0.5], word_probs=[0.9]) == pytest.approx(0.5)
    assert segment_confidence(-0.1, 0.0, word_probs=[0.9, 0.9]) == pytest.approx(0.81)
    assert segment_confidence(-0.1, 0.1) == pytest.approx(window_confidence(-0.1, 0.1))
    assert window_confidence(-0.1, 0.1) == pytest.approx(0.9 / (1 + math.exp(-(4.65 * -0.1 + 4.7))))
    assert window_confidence(float("-inf"), 0.1) == 0.0


def test_a_file_is_as_uncertain_as_its_least_certain_segment():
    assert file_confidence([0.9, 0.2, 0.7]) == pytest.approx(0.2)
    assert file_confidence([]) == 0.0  # nothing recognised: reviewed first
    assert file_confidence([0.8, float("nan")]) == 0.0
