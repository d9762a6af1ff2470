"""Backend names and where their adapters live (imported only when asked for)."""
from __future__ import annotations

import importlib

from .base import Adapter
from .config import Settings
from .exceptions import UnknownBackend

ADAPTERS: dict[str, str] = {
    "text_cls": "backends.adapters.text_cls:TextClassificationAdapter",
    "detection": "backends.adapters.detection:DetectionAdapter",
    "segmentation": "backends.adapters.segmentation:SegmentationAdapter",
    "asr": "backends.adapters.asr:ASRAdapter",
    "ner": "backends.adapters.ner:NERAdapter",
    "image_cls": "backends.adapters.image_cls:ImageClassificationAdapter",
    "keypoints": "backends.adapters.keypoints:KeypointsAdapter",
    "ocr": "backends.adapters.ocr:OCRAdapter",
}


def create(name: str, settings: Settings) -> Adapter:
    """An adapter instance for backend `name`.

    Raises:
        UnknownBackend: for a name that is not a backend.
    """
    if name not in ADAPTERS:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of {', '.join(ADAPTERS)}")
    module, _, cls = ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
