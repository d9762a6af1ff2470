"""Embedding cache: byte-bounded LRU, counters, sharing through a real redis-server, and Redis failures."""
from __future__ import annotations

import logging
import threading

import numpy as np

from segmentation.cache import EmbeddingCache, Entry


def entry(nbytes: int = 1000, value: float = 0.0) -> Entry:
    return Entry(np.full((1, nbytes // 2), value, np.float16), (480, 640), (192, 256))


def test_lru_is_bounded_in_bytes():
    cache = EmbeddingCache(max_bytes=3000)
    for i in range(5):
        cache.put(f"m:{i}", entry())
        assert cache.stats()["bytes"] <= 3000
    assert cache.stats()["items"] == 3
    assert cache.get("m:0") is None and cache.get("m:1") is None  # oldest went first
    assert cache.get("m:2") is not None
    cache.put("m:5", entry())  # m:2 was just used, so m:3 is now the oldest
    assert cache.get("m:3") is None
    assert cache.get("m:2") is not None
    # a replaced key is not counted twice
    cache.put("m:2", entry(2000))
    assert cache.stats()["bytes"] <= 3000


def test_hits_and_misses():
    cache = EmbeddingCache(max_bytes=10_000)
    assert cache.get("a") is None
    cache.put("a", entry(value=1.5))
    got = cache.get("a")
    assert got is not None and float(got.embedding[0, 0]) == 1.5 and got.original_size == (480, 640)
    assert cache.get("b") is None
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["redis_hits"], stats["items"], stats["bytes"]) == (1, 2, 0, 1, 1000)


def test_oversized_item_not_kept():
    cache = EmbeddingCache(max_bytes=3000)
    cache.put("small", entry())
    cache.put("big", entry(4000))
    assert cache.get("big") is None
    assert cache.get("small") is not None  # and it did not flush the others
    assert cache.stats()["bytes"] == 1000


def test_thread_safe():
    cache = EmbeddingCache(max_bytes=5000)

    def work(t: int) -> None:
        for i in range(200):
            cache.put(f"{t}:{i % 7}", entry())
            cache.get(f"{(t + 1) % 4}:{i % 7}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stats = cache.stats()
    assert stats["bytes"] == 1000 * stats["items"] <= 5000
    assert stats["hits"] + stats["misses"] == 800


def test_redis_shares_between_processes(redis_url):
    """Two caches on one Redis stand for two worker processes: what one computed, the other gets."""
    first = EmbeddingCache(redis_url=redis_url, namespace="test:sam")
    second = EmbeddingCache(redis_url=redis_url, namespace="test:sam")
    array = np.random.default_rng(0).normal(size=(1, 256, 16, 16)).astype(np.float32)
    first.put("vit_t-x:abc", Entry(array, (427, 640), (171, 256)))
    got = second.get("vit_t-x:abc")
    assert got is not None
    assert got.embedding.dtype == np.float16 and got.embedding.shape == array.shape
    np.testing.assert_array_equal(got.embedding, array.astype(np.float16))
    assert got.original_size == (427, 640) and got.input_size == (171, 256)
    assert second.stats()["redis_hits"] == 1
    second.get("vit_t-x:abc")  # now from its own memory
    assert second.stats()["redis_hits"] == 1 and second.stats()["hits"] == 2
    assert EmbeddingCache(redis_url=redis_url, namespace="other").get("vit_t-x:abc") is None


def test_redis_ttl(redis_url):
    import redis

    cache = EmbeddingCache(redis_url=redis_url, namespace="test:sam", ttl_s=60)
    cache.put("k", entry())
    ttl = redis.Redis.from_url(redis_url).ttl("test:sam:k")
    assert 0 < ttl <= 60


def test_redis_down_falls_back_to_local(caplog):
    cache = EmbeddingCache(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="segmentation.cache"):
        assert cache.get("a") is None
        cache.put("a", entry())
        assert cache.get("a") is not None
        cache.put("b", entry())
    warnings = [r for r in caplog.records if "Redis" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request
    assert cache.stats()["redis"] is False and cache.stats()["items"] == 2


def test_malformed_redis_url_falls_back_to_local():
    cache = EmbeddingCache(redis_url="notaurl://x")
    cache.put("a", entry())
    assert cache.get("a") is not None and cache.stats()["redis"] is False
