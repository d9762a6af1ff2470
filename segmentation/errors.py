"""The exceptions the segmentation package raises on purpose, each with what to do about it."""
from __future__ import annotations


class EngineError(RuntimeError):
    """A SAM model that cannot be found, downloaded or loaded (the message says where it looked and what to do)."""


class PromptError(ValueError):
    """Prompts SAM cannot use: none at all, only negative points, points outside the image, a box with no area."""


class NotEnoughMasks(ValueError):
    """Too few annotated masks to split into training and validation sets."""
