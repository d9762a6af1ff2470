"""Decoding any audio ffmpeg reads (through PyAV, which bundles its libraries) into 16 kHz mono float32 chunks.

Long recordings are never held whole: `iter_chunks` streams the file and yields pieces of about `chunk_s` seconds,
each cut at the quietest moment near its end so that no word is split between two pieces.
"""
from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DEFAULT_CHUNK_S = 120.0  # peak memory grows with the chunk, not with the file
_SEARCH_S = 5.0  # how far before the chunk end the quietest cut point is looked for
_FRAME_S = 0.1
_LIMIT_SLACK_S = 1.0  # headers estimate durations (mp3 from its bitrate): a file a hair over the limit passes


class AudioError(ValueError):
    """A file that holds no decodable audio: empty, corrupt, or without an audio stream."""


class AudioTooLong(AudioError):
    """A file longer than the caller's limit: its header says so, or decoding ran past the limit."""


def _hms(seconds: float) -> str:
    """A duration for people: '3 h 20 min', '12 min 5 s', '40 s'."""
    s = int(round(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min {sec} s" if sec else f"{m} min"
    return f"{sec} s"


def _declared_duration(container) -> float | None:
    """The duration the header declares, in seconds (container, else the audio stream); None when unknown.

    libavformat reads it from the header or estimates it from the bitrate: nothing is decoded."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def probe_duration(path: str | Path) -> float | None:
    """The duration `path`'s header declares, in seconds, or None when it declares none.

    Raises:
        AudioError: the file is empty, unreadable or holds no audio stream.
    """
    container = _open(path)
    try:
        return _declared_duration(container)
    finally:
        container.close()


def _too_long(path: str | Path, max_s: float, declared: float | None) -> AudioTooLong:
    limit = f"the limit is {_hms(max_s)}" + (f" ({max_s:g} s)" if max_s >= 60 else "")
    if declared is not None:
        return AudioTooLong(f"{Path(path).name} is {_hms(declared)} long; {limit}")
    return AudioTooLong(f"{Path(path).name} is longer than its header declares: decoding passed {_hms(max_s)}; "
                        f"{limit}")


def _open(path: str | Path):
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise AudioError(f"cannot read {path.name}: {e.strerror or type(e).__name__}") from None
    if size == 0:
        raise AudioError(f"{path.name} is an empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise AudioError(f"{path.name} is not an audio file ffmpeg can read ({_ffmpeg_reason(e)})") from None
    if not container.streams.audio:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise AudioError(f"{path.name} has no audio stream (it holds: {', '.join(kinds)})")
    return container


def _ffmpeg_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__


def _cut_point(samples: np.ndarray, target: int, sr: int) -> int:
    """The sample index in [target - search, target] with the least energy (a pause, ideally)."""
    frame = int(_FRAME_S * sr)
    lo = max(frame, target - int(_SEARCH_S * sr))
    window = samples[lo:target]
    n = len(window) // frame
    if n == 0:
        return target
    energy = (window[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    return lo + int(energy.argmin()) * frame + frame // 2


def iter_chunks(path: str | Path, chunk_s: float = DEFAULT_CHUNK_S, sample_rate: int = SAMPLE_RATE,
                max_s: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Stream a file as (offset seconds, mono float32 samples) pieces of about `chunk_s` seconds.

    With `max_s`, a file whose header declares more is refused before anything is decoded, and one whose header
    understates its length (or declares none) is stopped as soon as decoding passes the limit.

    Raises:
        AudioTooLong: the file is longer than `max_s` seconds.
        AudioError: the file is empty, unreadable, has no audio stream, or no sample could be decoded.
    """
    container = _open(path)
    declared = _declared_duration(container)
    if max_s is not None and declared is not None and declared > max_s + _LIMIT_SLACK_S:
        container.close()
        raise _too_long(path, max_s, declared)
    cap = None if max_s is None else int((max_s + _LIMIT_SLACK_S) * sample_rate)
    limit = int(chunk_s * sample_rate)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    pending: list[np.ndarray] = []
    held = 0
    offset = 0
    produced = False
    try:
        frames = container.decode(audio=0)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                # A truncated or damaged file: keep what decoded so far, say why it stopped.
                if not produced and held == 0:
                    raise AudioError(f"{Path(path).name} could not be decoded ({_ffmpeg_reason(e)})") from None
                log.warning("%s: decoding stopped early (%s); using the first %.1f s", Path(path).name,
                            _ffmpeg_reason(e), (offset + held) / sample_rate)
                break
            for out in resampler.resample(frame):
                arr = out.to_ndarray().reshape(-1)
                pending.append(arr)
                held += len(arr)
            if cap is not None and offset + held > cap:
                raise _too_long(path, max_s, None)
            if held >= limit + int(_SEARCH_S * sample_rate):
                buf = np.concatenate(pending).astype(np.float32) / 32768.0
                cut = _cut_point(buf, limit, sample_rate)
                yield offset / sample_rate, buf[:cut]
                produced = True
                offset += cut
                rest = (buf[cut:] * 32768.0).astype(np.int16)
                pending, held = [rest], len(rest)
                del buf
        for out in resampler.resample(None):
            arr = out.to_ndarray().reshape(-1)
            pending.append(arr)
            held += len(arr)
    finally:
        container.close()
        del resampler
        gc.collect()  # PyAV's resampler holds native buffers until collected (faster-whisper issue #390)
    if held:
        yield offset / sample_rate, np.concatenate(pending).astype(np.float32) / 32768.0
        produced = True
    if not produced:
        raise AudioError(f"{Path(path).name}: no audio samples could be decoded")


def decode(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole file as 16 kHz mono float32 (for short files: tests, benchmarks)."""
    return np.concatenate([samples for _, samples in iter_chunks(path, 1e9, sample_rate)])
