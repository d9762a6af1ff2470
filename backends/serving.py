"""The model cache of a backend process: each project's newest published version, loaded once and kept while it
is current, the base model loaded on first use (or warmed up at start)."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from .base import Adapter
from .exceptions import ModelUnavailable
from .lazy import Lazy
from .versions import ModelStore

log = logging.getLogger(__name__)


class ModelServer:
    """Serves each project's newest published version, reloading when it changes, keeping the last good one.

    Every worker process checks the store's CURRENT pointer per request, so a version published by a training
    worker is served without a restart.
    """

    def __init__(self, backend: Adapter, store: ModelStore, max_models: int = 8):
        self.backend, self.store, self.max_models = backend, store, max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[int, tuple[str, Any]] = OrderedDict()
        self._base = Lazy(lambda: backend.load_model(None), f"the base model of {backend.name} cannot be loaded")
        self._warming = False
        self._broken: set[str] = set()

    def base(self) -> tuple[str, Any]:
        """The base model, loaded once.

        Raises:
            ModelUnavailable: when it cannot be loaded (the reason is kept for /health).
        """
        return self.backend.base_version(), self._base.get()

    def warm_up(self, background: bool = True) -> None:
        """Load the base model now, so the first request is not the slow one.

        Args:
            background: load in a thread and return at once; False loads before returning (a failure is kept for
                /health, not raised).
        """
        self._warming = True

        def load():
            try:
                self.base()
            except ModelUnavailable:
                pass

        if background:
            threading.Thread(target=load, name="warm-up", daemon=True).start()
        else:
            load()

    def base_state(self) -> tuple[str, str | None]:
        """("ready" | "loading" | "failed" | "idle", reason) of the base model, for /health."""
        if self._base.loaded:
            return "ready", None
        if self._base.error:
            return "failed", self._base.error
        return ("loading" if self._warming else "idle"), None

    def get(self, project_id: int | None) -> tuple[str, Any]:
        """(model_version, model) to serve for a project."""
        info = self.store.current(project_id) if project_id is not None else None
        cached = self._models.get(project_id) if project_id is not None else None
        if info is None:
            return self.base()
        if cached and cached[0] == info.model_version:
            return cached
        if info.model_version in self._broken:
            return cached or self.base()
        with self._lock:
            cached = self._models.get(project_id)
            if cached and cached[0] == info.model_version:
                return cached
            try:
                model = self.backend.load_model(info.path)
            except Exception:
                log.exception("cannot load %s for project %s; serving the last good model", info.model_version,
                              project_id)
                self._broken.add(info.model_version)
                return cached or self.base()
            self._models[project_id] = (info.model_version, model)
            self._models.move_to_end(project_id)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return self._models[project_id]
