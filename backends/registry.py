"""Backend names and where their adapters live (imported only when asked for)."""
from __future__ import annotations

import importlib

from .base import Backend
from .config import Settings
from .exceptions import UnknownBackend

ADAPTERS: dict[str, str] = {
    "text_cls": "backends.adapters.text_cls:TextClassificationBackend",
    "detection": "backends.adapters.detection:DetectionBackend",
    "segmentation": "backends.adapters.segmentation:SegmentationBackend",
    "asr": "backends.adapters.asr:ASRBackend",
    "ner": "backends.adapters.ner:NERBackend",
    "image_cls": "backends.adapters.image_cls:ImageClassificationBackend",
    "keypoints": "backends.adapters.keypoints:KeypointsBackend",
    "ocr": "backends.adapters.ocr:OCRBackend",
}


def create(name: str, settings: Settings) -> Backend:
    """An adapter instance for backend `name`.

    Raises:
        UnknownBackend: for a name that is not a backend.
    """
    if name not in ADAPTERS:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of {', '.join(ADAPTERS)}")
    module, _, cls = ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
