"""MAX_AUDIO_SECONDS in the task package: a file longer than the limit is refused from its header before anything is
decoded, and one whose header declares less (or nothing) is stopped as soon as decoding passes the limit."""
from __future__ import annotations

import time

import numpy as np
import pytest

from asr import audio
from asr.audio import AudioTooLong, iter_chunks, probe_duration
from asr.engine import DecodeOptions
from tests.asr.conftest import ffmpeg, write_wav


@pytest.fixture(scope="module")
def half_hour(tmp_path_factory):
    """30 minutes of quiet noise as FLAC (a few MB)."""
    path = tmp_path_factory.mktemp("long") / "half-hour.flac"
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=r=16000:a=0.001:d=1800", "-ac", "1", str(path))
    return path


def test_probe_reads_the_header(half_hour, tmp_path):
    assert probe_duration(half_hour) == pytest.approx(1800, abs=0.5)
    short = write_wav(tmp_path / "short.wav", np.zeros(16000 * 3, np.float32))
    assert probe_duration(short) == pytest.approx(3.0, abs=0.01)


def test_a_file_over_the_limit_is_refused_before_decoding(half_hour):
    start = time.perf_counter()
    with pytest.raises(AudioTooLong, match=r"half-hour.flac is 30 min long; the limit is 10 min \(600 s\)"):
        next(iter_chunks(half_hour, max_s=600))
    assert time.perf_counter() - start < 1.0  # decoding 30 minutes would take seconds
    assert sum(len(c) for _, c in iter_chunks(half_hour, chunk_s=600, max_s=1800)) == 1800 * 16000  # at the limit


@pytest.mark.parametrize("declared", [None, 60.0])
def test_a_header_that_declares_less_is_stopped_while_decoding(half_hour, monkeypatch, declared):
    monkeypatch.setattr(audio, "_declared_duration", lambda container: declared)
    decoded = 0.0
    with pytest.raises(AudioTooLong, match="longer than its header declares: decoding passed 2 min"):
        for offset, samples in iter_chunks(half_hour, chunk_s=30, max_s=120):
            decoded = offset + len(samples) / 16000
    assert 60 < decoded <= 121  # what was yielded (pieces of 25-30 s) stays within the limit


def test_the_transcriber_applies_the_limit(transcriber, ljspeech):
    path = ljspeech[2][0]  # ~7 s
    with pytest.raises(AudioTooLong, match="the limit is 5 s"):
        transcriber.transcribe(path, DecodeOptions(max_seconds=5))
    assert "movable types" in transcriber.transcribe(path, DecodeOptions(max_seconds=10)).text
