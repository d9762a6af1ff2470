"""Backend names and where their adapters live (imported only when asked for)."""
from __future__ import annotations

import importlib

from .base import Backend
from .config import Settings
from .exceptions import UnknownBackend

ADAPTERS: dict[str, str | None] = {
    "text_cls": "backends.adapters.text_cls:TextClassificationBackend",
    "detection": "backends.adapters.detection:DetectionBackend",
    "segmentation": "backends.adapters.segmentation:SegmentationBackend",
    "asr": "backends.adapters.asr:ASRBackend",
}


def create(name: str, settings: Settings) -> Backend:
    """An adapter instance for backend `name`.

    Raises:
        UnknownBackend: for a name that is not a backend, or one that is not built yet.
    """
    if name not in ADAPTERS:
        raise UnknownBackend(f"unknown backend {name!r}; choose one of {', '.join(ADAPTERS)}")
    target = ADAPTERS[name]
    if target is None:
        raise UnknownBackend(f"backend {name!r} is not available in this version of labelloop yet")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
