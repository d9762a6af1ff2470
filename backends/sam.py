"""The SAM segmenter a segmentation backend serves: which model and checkpoint the settings name, loaded once on
first use (a missing checkpoint remembered, looked for again at most every `RETRY_SAM_S`), its embedding cache,
and what /health says about it.

Settings: SAM_MODEL (vit_t = MobileSAM, default; vit_b, vit_l, vit_h), SAM_CHECKPOINT (a file name in WEIGHTS_DIR
or a path inside it or MODEL_DIR; default the official file of SAM_MODEL, downloaded the normal way),
SAM_CACHE_BYTES (in-process embedding cache, default 512 MiB; shared through Redis with REDIS_URL).
"""
from __future__ import annotations

from typing import Any

from segmentation.cache import EmbeddingCache
from segmentation.engines import DEFAULT_KIND, load_sam, model_id, resolve_checkpoint
from segmentation.errors import EngineError
from segmentation.predictor import Segmenter

from .config import Settings
from .lazy import Lazy

RETRY_SAM_S = 60.0  # missing SAM weights are looked for again at most this often


class SamService:
    """SAM_MODEL / SAM_CHECKPOINT from `settings`, loaded on first `get`; embeddings cached in SAM_CACHE_BYTES
    (shared through Redis with REDIS_URL)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.kind = settings.sam_model or DEFAULT_KIND
        self.cache = EmbeddingCache(settings.sam_cache_bytes, redis_url=settings.redis_url or None)
        self._lazy = Lazy(self._load, f"SAM ({self.kind}) is not available", (EngineError,), RETRY_SAM_S)

    def get(self) -> Segmenter:
        """The segmenter, loaded once.

        Raises:
            ModelUnavailable: no SAM weights (the reason says where they were looked for).
        """
        return self._lazy.get()

    def _checkpoint(self, download: bool = True):
        return resolve_checkpoint(self.settings.sam_checkpoint or None, self.kind, self.settings.weights_dir,
                                  [self.settings.model_dir], download=download)

    def _load(self) -> Segmenter:
        checkpoint = self._checkpoint()
        sam = load_sam(self.kind, checkpoint)
        return Segmenter(sam, model_id(self.kind, checkpoint, sam), self.cache)

    def status(self) -> dict[str, Any]:
        """/health's `sam` and `cache`: ready, not loaded yet, or unavailable with the reason."""
        error = self._lazy.error
        if not self._lazy.loaded and not error:
            try:  # before the first click: are there weights to load? (looks only, downloads nothing)
                self._checkpoint(download=False)
            except EngineError as e:
                error = str(e)
        state = "ready" if self._lazy.loaded else "unavailable" if error else "not loaded"
        body: dict[str, Any] = {"sam": {"model": self.kind, "state": state}, "cache": self.cache.stats()}
        if error:
            body["sam"]["reason"] = error + " (interactive masks are off; automatic masks still work)"
        return body
