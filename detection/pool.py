"""The base YOLO models of a process: which weights a spec may name (see `weights`), each loaded once, and only
a few kept loaded at a time."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from .engines import Serving
from .model import Detector
from .trained import is_trained_weights
from .weights import DEFAULT_ALLOWED, resolve_weights

MAX_LOADED = 4  # each YOLO model holds tens to hundreds of MB


class DetectorPool:
    """Base detectors by weights, loaded on first use; the least recently used goes when more than `size` are
    loaded (a caller still holding it keeps it alive).

    `serving` is `Detector.load`'s: which engine serves a detect `.pt` model, where its OpenVINO export is cached,
    and OpenVINO's precision.
    """

    def __init__(self, weights_dir: str | Path | None, model_dir: str | Path,
                 allowed: Iterable[str] = DEFAULT_ALLOWED, size: int = MAX_LOADED,
                 serving: Serving = Serving()):
        self.weights_dir = weights_dir
        self.model_dir = Path(model_dir)
        self.allowed = tuple(allowed) or DEFAULT_ALLOWED
        self.size = size
        self.serving = serving
        self.loaded: OrderedDict[str, Detector] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def resolve(self, spec: str | None, task: str) -> str:
        """The weights a spec names, if they may be loaded: allowed files of the weights folder, or the weights of
        a model trained into `model_dir` (see `weights.resolve_weights`).

        Raises:
            WeightsError: anything else.
        """
        return resolve_weights(spec, task, self.weights_dir, self.allowed,
                               written=lambda path: is_trained_weights(path, self.model_dir))

    def get(self, weights: str, task: str | None = None) -> Detector:
        """The detector of resolved `weights`, loaded once.

        Raises:
            ModelLoadError: the weights do not load.
        """
        with self._lock:
            found = self.loaded.get(weights)
            if found is None:
                found = Detector.load(weights, task, self.serving)
                self.loaded[weights] = found
                while len(self.loaded) > self.size:
                    self.loaded.popitem(last=False)
            self.loaded.move_to_end(weights)
            return found
