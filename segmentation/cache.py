"""Image-embedding cache: an in-process LRU bounded in bytes, optionally shared between processes through Redis.

Computing an image embedding is the slow part of SAM (seconds on CPU); every click on the same image only needs the
small mask decoder. Workers and replicas behind a load balancer share embeddings through Redis, stored as float16
(2 MiB per 1024 px image). Redis is a help, never a requirement: when it fails the cache logs once, carries on
locally and tries Redis again after a pause.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

MiB = 1 << 20
_MAGIC = b"LLSAM1\n"
# After a Redis error, skip Redis for this long rather than pay a connect timeout on every click.
_RETRY_AFTER_S = 30.0


@dataclass
class Entry:
    """One image's embedding and what decoding masks against it needs.

    Attributes:
        embedding: (1, C, h, w) image-encoder output (float16 when it came from Redis or a `Segmenter`).
        original_size: (H, W) of the image the prompts refer to.
        input_size: (h, w) of the image after resizing its longest side to the encoder size (before padding).
    """

    embedding: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(self.embedding.nbytes)


def encode_entry(entry: Entry) -> bytes:
    """The Redis value of an entry: a magic line, a JSON line with the sizes, then the float16 array (`np.save`)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(entry.embedding, dtype=np.float16), allow_pickle=False)
    header = json.dumps({"original_size": list(entry.original_size), "input_size": list(entry.input_size)})
    return _MAGIC + header.encode() + b"\n" + buf.getvalue()


def decode_entry(raw: bytes) -> Entry:
    """Inverse of `encode_entry` (no pickle involved).

    Raises:
        ValueError: not an encoded entry.
    """
    if not raw.startswith(_MAGIC):
        raise ValueError("not a labelloop SAM embedding")
    header, _, body = raw[len(_MAGIC):].partition(b"\n")
    meta = json.loads(header)
    array = np.load(io.BytesIO(body), allow_pickle=False)
    return Entry(array, tuple(meta["original_size"]), tuple(meta["input_size"]))


class EmbeddingCache:
    """Thread-safe LRU of `Entry` by key, bounded by the summed bytes of the embeddings, optionally backed by Redis.

    Args:
        max_bytes: memory bound of the local LRU (oldest evicted first); an entry larger than this is not kept
            locally (it still goes to Redis). 0 disables the local cache.
        redis_url: `redis://host:port/db` to share entries between processes, or None.
        namespace: prefix of the Redis keys.
        ttl_s: expiry of the Redis entries (refreshed on every write, not on reads).
    """

    def __init__(self, max_bytes: int = 512 * MiB, redis_url: str | None = None, namespace: str = "labelloop:sam",
                 ttl_s: int = 7 * 24 * 3600) -> None:
        self.max_bytes = int(max_bytes)
        self.namespace = namespace
        self.ttl_s = int(ttl_s)
        self._items: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._redis_hits = 0
        self._redis = None
        self._redis_url = redis_url
        self._redis_down_until = 0.0
        self._warned = False
        if redis_url:
            import redis

            try:
                # short timeouts: a slow or absent Redis must cost a click milliseconds, not seconds
                self._redis = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=0.5)
            except ValueError as e:  # a malformed URL: same policy as a Redis that is down
                self._redis_failed(e)
                self._redis_down_until = float("inf")

    # -- local LRU ------------------------------------------------------------------------------------------------
    def _keep(self, key: str, entry: Entry) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.max_bytes:
                return
            self._items[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    # -- Redis ----------------------------------------------------------------------------------------------------
    def _redis_ok(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: Exception) -> None:
        self._redis_down_until = time.monotonic() + _RETRY_AFTER_S
        if not self._warned:
            self._warned = True
            log.warning("embedding cache: Redis at %s failed (%s: %s); using the local cache only, retrying every "
                        "%.0f s", self._redis_url, type(error).__name__, error, _RETRY_AFTER_S)

    def _rkey(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    # -- API ------------------------------------------------------------------------------------------------------
    def get(self, key: str, count: bool = True) -> Entry | None:
        """The entry for `key` from memory, else from Redis (then kept in memory too), else None.

        Args:
            key: `f"{model_id}:{image_sha256}"`.
            count: count this lookup in the stats (off for a re-check of a lookup already counted).

        Returns:
            The entry, or None on a miss.
        """
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                self._hits += count
                return entry
        if self._redis_ok():
            try:
                raw = self._redis.get(self._rkey(key))
            except Exception as e:  # connection refused, timeout, auth...: never fail the request
                self._redis_failed(e)
                raw = None
            if raw is not None:
                try:
                    entry = decode_entry(raw)
                except Exception as e:
                    log.warning("embedding cache: unreadable Redis entry %s (%s), ignored", key, e)
                else:
                    self._keep(key, entry)
                    with self._lock:
                        self._hits += count
                        self._redis_hits += count
                    return entry
        with self._lock:
            self._misses += count
        return None

    def put(self, key: str, entry: Entry) -> None:
        """Store `entry` in memory (unless larger than `max_bytes`) and in Redis when configured.

        Args:
            key: `f"{model_id}:{image_sha256}"`.
            entry: the embedding and sizes.
        """
        self._keep(key, entry)
        if self._redis_ok():
            try:
                self._redis.set(self._rkey(key), encode_entry(entry), ex=self.ttl_s)
            except Exception as e:
                self._redis_failed(e)

    def stats(self) -> dict:
        """Counters since creation.

        Returns:
            {"hits" (memory + Redis), "misses", "redis_hits", "bytes" (held in memory), "items" (in memory),
            "max_bytes", "redis" (configured and not in its back-off pause)}.
        """
        with self._lock:
            return {"hits": self._hits, "misses": self._misses, "redis_hits": self._redis_hits, "bytes": self._bytes,
                    "items": len(self._items), "max_bytes": self.max_bytes, "redis": self._redis_ok()}
