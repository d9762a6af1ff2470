"""Speech recognition with Whisper: model resolution (`models`), audio decoding (`audio`), transcription with
confidence (`engine`, `confidence`), adaptation to corrected transcripts (`adapt`), a served version (`served`).
Knows nothing of Label Studio (that is backends/adapters/asr.py and backends/transcripts.py)."""
from __future__ import annotations

from .audio import AudioError
from .engine import DecodeOptions, Segment, Transcriber, Transcript, get_transcriber
from .models import DEFAULT_MODEL, ModelError, ModelSpec, resolve_model

__all__ = ["AudioError", "DEFAULT_MODEL", "DecodeOptions", "ModelError", "ModelSpec", "Segment", "Transcriber",
           "Transcript", "get_transcriber", "resolve_model"]
