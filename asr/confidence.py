"""Confidence of a transcript in [0, 1] from what Whisper reports, for ranking the tasks it gets wrong first.

A segment's confidence comes from its own tokens and words: the probability that its transcript is right as a whole
(the product of Whisper's probabilities for each of its text tokens, punctuation included: sequence-level least
confidence, as in Settles & Craven, "An analysis of active learning strategies for sequence labeling tasks", EMNLP
2008), times the probability that it holds speech at all (1 - no_speech_prob), times a penalty for words spoken
faster or slower than people speak (`rate_factor`): Whisper's hallucinations are words made out of too little audio
(openai-whisper's own hallucination check, `word_anomaly_score`, flags words shorter than 0.133 s the same way),
and a passage read out in far too long a time has lost words. A file is as uncertain as its least certain segment.

Measured on LJSpeech and spoken digits with tiny.en (bench/asr_score_bench.py; every weight chosen on random halves
of the clips and measured on the other halves), the speaking-rate penalty raises the Spearman correlation with -WER
from 0.48 to 0.58 (pooled), on both data sets, and every other signal tried (the k least likely tokens, mean
log-probability per token or per second, word probabilities, compression ratio, temperature fallbacks, agreement
with a beam-5 decode, learned combinations) ranked worse. The former score (a Platt-scaled average log-probability of
the whole 30-second decoding window, so every segment of a window had the same number) is kept for engines that
report no token or word probabilities, with its scaling fitted by `fit_calibration` (see bench/asr_bench.py).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """confidence = sigmoid(a * avg_logprob + b) * (1 - no_speech_prob)."""

    a: float = 4.65
    b: float = 4.7


DEFAULT_CALIBRATION = Calibration()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def window_confidence(avg_logprob: float, no_speech_prob: float,
                      calibration: Calibration = DEFAULT_CALIBRATION) -> float:
    """The former score, from a decoding window's average log-probability; NaN or infinite inputs count as none."""
    if not (math.isfinite(avg_logprob) and math.isfinite(no_speech_prob)):
        return 0.0
    return min(max(_sigmoid(calibration.a * avg_logprob + calibration.b) * _speech(no_speech_prob), 0.0), 1.0)


def _speech(no_speech_prob: float) -> float:
    return min(max(1.0 - no_speech_prob, 0.0), 1.0) if math.isfinite(no_speech_prob) else 0.0


def sequence_confidence(probs: Sequence[float], no_speech_prob: float) -> float:
    """The probability that every token (or word) is right and that it is speech: prod(probs) * (1 - no_speech)."""
    p = np.clip(np.nan_to_num(np.asarray(probs, dtype=np.float64), nan=0.0), 1e-12, 1.0)
    return float(np.exp(np.log(p).sum()) * _speech(no_speech_prob))


# ~150 words a minute, the usual figure for read and conversational English (LJSpeech reads at 2.6 words/s)
NORMAL_WORDS_PER_S = 2.5
# how sharply a rate away from the normal one lowers the confidence: chosen on random halves of the bench's clips
# (median of the weights chosen; the halves chose 4 in most draws)
RATE_WEIGHT = 4.0
# Whisper's timestamps step by 20 ms; a segment shorter than this counts as this long, so the rate stays finite
MIN_SEGMENT_S = 0.1


def rate_factor(n_words: int, seconds: float) -> float:
    """In (0, 1]: 1 at the normal speaking rate, (rate ratio) ** -RATE_WEIGHT away from it either way, so one word
    in 0.1 s (4x too fast) gets 0.004 and two words in 0.8 s (normal) 1. 1 when there are no words."""
    if n_words <= 0 or not math.isfinite(seconds):
        return 1.0
    rate = n_words / max(seconds, MIN_SEGMENT_S)
    return math.exp(-RATE_WEIGHT * abs(math.log(rate / NORMAL_WORDS_PER_S)))


def segment_confidence(avg_logprob: float, no_speech_prob: float, calibration: Calibration = DEFAULT_CALIBRATION,
                       token_probs: Sequence[float] = (), word_probs: Sequence[float] = (), n_words: int = 0,
                       seconds: float = 0.0) -> float:
    """One segment's confidence in [0, 1], from its own tokens and words: the product of its token probabilities,
    else of its word probabilities, else (an engine that reports neither) its decoding window's average
    log-probability; times P(speech) and the `rate_factor` of its `n_words` in `seconds` (n_words 0: no penalty)."""
    if len(token_probs):
        p = sequence_confidence(token_probs, no_speech_prob)
    elif len(word_probs):
        p = sequence_confidence(word_probs, no_speech_prob)
    else:
        p = window_confidence(avg_logprob, no_speech_prob, calibration)
    return p * rate_factor(n_words, seconds)


def file_confidence(confidences: Sequence[float]) -> float:
    """The least confident segment's confidence: one wrong passage is enough to need a correction. 0 when nothing
    was recognised, so that such a file is reviewed first."""
    c = np.clip(np.nan_to_num(np.asarray(confidences, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return float(c.min()) if len(c) else 0.0


def fit_calibration(avg_logprobs: Sequence[float], accuracies: Sequence[float]) -> Calibration:
    """Platt scaling from (avg_logprob, word accuracy in [0, 1]) pairs.

    Each pair counts as a "right" example weighted by its accuracy and a "wrong" one weighted by the rest, so a
    logistic regression fits the expected accuracy.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(avg_logprobs, dtype=np.float64).reshape(-1, 1)
    acc = np.clip(np.asarray(accuracies, dtype=np.float64), 0.0, 1.0)
    if len(x) < 2:
        raise ValueError("calibration needs at least two examples")
    xs = np.vstack([x, x])
    ys = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    weights = np.concatenate([acc, 1.0 - acc]) + 1e-6
    lr = LogisticRegression(C=100.0).fit(xs, ys, sample_weight=weights)
    return Calibration(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
