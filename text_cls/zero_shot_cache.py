"""The zero-shot classifiers a server keeps: one per encoder, control and zero-shot params, the least recently used
dropped first."""
from __future__ import annotations

import threading
from collections import OrderedDict

from .classifier import TextClassifier
from .controls import ControlSpec
from .encoder import Encoder

# The params that change a zero-shot classifier: part of its key.
ZERO_SHOT_PARAMS = ("zero_shot_prompt", "zero_shot_temperature", "multi_margin", "multi_temperature")


class ZeroShotCache:
    """Zero-shot `TextClassifier`s by everything they depend on; safe to share between threads."""

    def __init__(self) -> None:
        self._found: OrderedDict[tuple, TextClassifier] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._found)

    def get(self, encoder: Encoder, spec: ControlSpec, params: dict, keep: int) -> TextClassifier:
        """The zero-shot classifier of `spec` under `params`, built on first use; at most `keep` are kept.

        Raises:
            ValueError: params the classifier refuses (see `params.merge_params`).
        """
        key = (encoder.name_or_path, spec.name, tuple(spec.labels), spec.multi,
               tuple(sorted((k, tuple(v)) for k, v in spec.descriptions.items())),
               tuple(repr(params.get(k)) for k in ZERO_SHOT_PARAMS))
        with self._lock:
            found = self._found.get(key)
            if found is None:
                found = self._found[key] = TextClassifier(encoder, [spec], params)
                while len(self._found) > keep:
                    self._found.popitem(last=False)
            self._found.move_to_end(key)
            return found
