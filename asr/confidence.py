"""Confidence of a transcript in [0, 1] from what Whisper reports per segment.

A segment's confidence is a Platt-scaled average token log-probability (the probability that its words are
right), times the probability that the segment holds speech at all (1 - no_speech_prob). A file's confidence
is the duration-weighted mean over its segments. The scaling was fitted with `fit_calibration` on tiny.en
transcripts of the LJSpeech and spoken-digit clips in ../shared (see bench/asr_bench.py), targeting each
file's word accuracy (1 - WER).
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


def segment_confidence(avg_logprob: float, no_speech_prob: float,
                       calibration: Calibration = DEFAULT_CALIBRATION) -> float:
    """One segment's confidence in [0, 1]; NaN or infinite inputs count as no confidence."""
    if not (math.isfinite(avg_logprob) and math.isfinite(no_speech_prob)):
        return 0.0
    speech = min(max(1.0 - no_speech_prob, 0.0), 1.0)
    return min(max(_sigmoid(calibration.a * avg_logprob + calibration.b) * speech, 0.0), 1.0)


def file_confidence(durations: Sequence[float], confidences: Sequence[float]) -> float:
    """Duration-weighted mean of segment confidences; 0 when nothing was recognised (so it is reviewed first)."""
    w = np.clip(np.asarray(durations, dtype=np.float64), 0.0, None)
    c = np.clip(np.nan_to_num(np.asarray(confidences, dtype=np.float64)), 0.0, 1.0)
    if len(c) == 0:
        return 0.0
    if w.sum() <= 0:  # zero-length segments (timestamps collapsed): plain mean
        return float(c.mean())
    return float((w * c).sum() / w.sum())


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
