"""Label Studio's API, shared by the backends (reading annotations, downloading media) and the project manager's
command line (`scripts/`): the label-studio-sdk client built once (`client.py`), and which of a task's
annotations counts (`annotations.py`).

It imports neither `backends/` nor `scripts/` nor any task package, so both sides can use it.
"""
from __future__ import annotations

from .annotations import newest_annotation
from .client import LabelStudioClient, LabelStudioError

__all__ = ["LabelStudioClient", "LabelStudioError", "newest_annotation"]
