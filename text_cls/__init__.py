"""Text classification for Label Studio choice controls: zero-shot from label names, then trained heads.

Pure ML: this package never imports `backends` (the Label Studio layer builds on it, not the other way round).
"""
from __future__ import annotations

from .classifier import DEFAULT_PARAMS, ControlSpec, TextClassifier
from .encoder import DEFAULT_MODEL, Encoder, get_encoder, resolve_model

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PARAMS",
    "ControlSpec",
    "Encoder",
    "TextClassifier",
    "get_encoder",
    "resolve_model",
]
