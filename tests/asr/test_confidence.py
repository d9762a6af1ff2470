"""The confidence arithmetic (pure): a segment's from its token probabilities, else its word probabilities, else its
decoding window's average log-probability, times the speaking-rate factor of its own words; a file's from its least
certain segment. And its wiring into the Transcriber, with a stand-in engine."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.io import wavfile

from asr.confidence import (NORMAL_WORDS_PER_S, RATE_WEIGHT, file_confidence, rate_factor, segment_confidence,
                            sequence_confidence, window_confidence)
from asr.engine import Segment, Transcriber, Word
from asr.models import ModelSpec


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


def test_the_rate_factor_is_one_at_a_normal_rate_and_falls_either_way():
    assert rate_factor(5, 5 / NORMAL_WORDS_PER_S) == pytest.approx(1.0)
    # twice too fast and twice too slow lose the same: 2 ** -RATE_WEIGHT
    assert rate_factor(10, 2.0) == pytest.approx(2.0 ** -RATE_WEIGHT)
    assert rate_factor(5, 4.0) == pytest.approx(2.0 ** -RATE_WEIGHT)
    # one word made out of 20 ms of audio (a hallucination) counts as 0.1 s long: 4x too fast
    assert rate_factor(1, 0.02) == pytest.approx(4.0 ** -RATE_WEIGHT) and rate_factor(1, 0.02) < 0.01
    assert rate_factor(1, 0.3) > rate_factor(1, 0.15) > rate_factor(1, 0.1)
    # no words (an engine without them, nothing said), or times that make no sense: no penalty, never NaN
    assert rate_factor(0, 0.0) == 1.0 and rate_factor(3, float("nan")) == 1.0


def test_a_segment_is_scored_from_its_own_words_and_their_rate():
    normal = segment_confidence(-0.1, 0.1, token_probs=[0.9, 0.8], n_words=2, seconds=0.8)
    assert normal == pytest.approx(0.9 * 0.8 * 0.9)
    hurried = segment_confidence(-0.1, 0.1, token_probs=[0.9, 0.8], n_words=2, seconds=0.2)
    assert hurried == pytest.approx(normal * 4.0 ** -RATE_WEIGHT)
    # the rate applies whichever probabilities the segment has
    assert segment_confidence(-0.1, 0.0, word_probs=[0.9], n_words=1, seconds=0.1) == pytest.approx(
        0.9 * 4.0 ** -RATE_WEIGHT)
    assert segment_confidence(-0.1, 0.1, n_words=4, seconds=0.4) == pytest.approx(
        window_confidence(-0.1, 0.1) * 4.0 ** -RATE_WEIGHT)
    assert 0.0 <= segment_confidence(-0.1, 0.0, token_probs=[1.0], n_words=1, seconds=0.0) <= 1.0


def test_a_file_is_as_uncertain_as_its_least_certain_segment():
    assert file_confidence([0.9, 0.2, 0.7]) == pytest.approx(0.2)
    assert file_confidence([]) == 0.0  # nothing recognised: reviewed first
    assert file_confidence([0.8, float("nan")]) == 0.0


class _Engine:
    """Answers every chunk with a segment read at a normal rate and one word made out of 60 ms of audio."""

    spec = ModelSpec("faster-whisper", "none", "tiny.en")

    def transcribe(self, audio, opts):
        return [Segment(0.0, 1.2, "three words here", -0.2, 0.1, words=[Word(0.0, 0.4, "three", 0.9),
                        Word(0.4, 0.8, "words", 0.9), Word(0.8, 1.2, "here", 0.9)], token_probs=[0.9, 0.9, 0.9]),
                Segment(1.5, 1.56, "Bye.", -0.2, 0.1, words=[Word(1.5, 1.56, "Bye.", 0.9)],
                        token_probs=[0.9, 0.9])], "en"


def test_the_transcriber_scores_each_segment_from_its_own_words_and_rate(tmp_path):
    wav = tmp_path / "quiet.wav"
    wavfile.write(wav, 16000, np.zeros(32000, dtype=np.int16))
    t = Transcriber(_Engine()).transcribe(wav)
    normal, hurried = t.segments
    assert normal.confidence == pytest.approx(0.9 ** 3 * 0.9 * rate_factor(3, 1.2))
    assert rate_factor(3, 1.2) == pytest.approx(1.0) and normal.confidence > 0.5
    # the same token probabilities, but one word in 60 ms: a hallucination, ranked first
    assert hurried.confidence == pytest.approx(0.9 ** 2 * 0.9 * 4.0 ** -RATE_WEIGHT)
    assert t.confidence == hurried.confidence
