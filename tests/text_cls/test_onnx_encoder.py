"""The int8 ONNX Runtime engine of the sentence encoder: close to PyTorch's embeddings, exported once per weights,
chosen by a validated setting."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from text_cls import encoder as encoder_mod
from text_cls import onnx_int8
from text_cls.encoder import ENGINES, Encoder, get_encoder, pad

SENTENCES = [
    "What is the capital of France ?",
    "Who wrote Hamlet ?",
    "The movie was a complete waste of two hours, with wooden acting and a plot that made no sense at all.",
    "How many calories are there in a Big Mac ?",
    "an utterly charming and hilarious film that reminded me why i love movies",
]


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="session")
def int8(encoder: Encoder, onnx_dir: Path) -> Encoder:
    """The int8 engine of the session's MiniLM, exported once into a session folder."""
    return Encoder(encoder.name_or_path, engine="onnx-int8", onnx_dir=onnx_dir, threads=1, cache_bytes=0)


def test_int8_embeddings_are_close_to_torch(encoder: Encoder, int8: Encoder) -> None:
    assert int8.engine == "onnx-int8" and int8.dim == encoder.dim
    assert int8.onnx.threads == 1
    reference = Encoder(encoder.name_or_path, cache_bytes=0).encode(SENTENCES)
    # One batch padded to the longest sentence, and one sentence per batch. Dynamic quantization scales a batch's
    # activations together, so a vector moves a little with its batch mates, never far.
    together = int8.encode(SENTENCES)
    alone = Encoder(encoder.name_or_path, engine="onnx-int8", onnx_dir=int8.onnx.path.parent.parent, batch_size=1,
                    cache_bytes=0).encode(SENTENCES)
    assert together.dtype == np.float32 and together.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for vectors in (together, alone):
        cosines = (vectors * reference).sum(axis=1)
        assert cosines.min() >= 0.99, cosines
        # Not the float32 model under another name: quantization moves the vectors a little.
        assert cosines.max() < 0.99999
    # A text of one or two tokens averages the least quantization noise away, the more so beside long texts (their
    # batch's activations set the int8 scale): further, still the same direction.
    short = ["x", "Thanks!"]
    mixed = int8.encode(short + SENTENCES)[: len(short)]
    assert ((mixed * encoder.encode(short)).sum(axis=1) >= 0.95).all()


def test_export_is_cached_by_the_weights_digest(encoder: Encoder, int8: Encoder, onnx_dir: Path,
                                                monkeypatch) -> None:
    path = int8.onnx.path
    digest = onnx_int8.source_digest(encoder.name_or_path)
    assert path.parent.name == f"{Path(encoder.name_or_path).name}-{digest[:16]}" and path.parent.parent == onnx_dir
    assert [p.name for p in onnx_dir.iterdir() if not p.name.startswith(".")] == [path.parent.name]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_int8, "_export_float", no_export)
    again = Encoder(encoder.name_or_path, engine="onnx-int8", onnx_dir=onnx_dir, cache_bytes=0)
    assert again.onnx.path == path and again.engine == "onnx-int8"
    # The PyTorch model is not loaded for serving from a cached export, only when asked for (fine-tuning).
    assert again._model is None
    assert again.model.config.hidden_size == again.dim


def test_digest_follows_weights_and_recipe(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert onnx_int8.source_digest(folder) is None  # no weights: nothing to export
    with pytest.raises(ValueError, match="no model weights"):
        onnx_int8.export_int8(folder, tmp_path / "cache")
    (folder / "model.safetensors").write_bytes(b"weights one")
    first = onnx_int8.cached_model_path(folder, tmp_path / "cache")
    (folder / "model.safetensors").write_bytes(b"weights two")
    second = onnx_int8.cached_model_path(folder, tmp_path / "cache")
    monkeypatch.setattr(onnx_int8, "RECIPE", onnx_int8.RECIPE + " changed")
    third = onnx_int8.cached_model_path(folder, tmp_path / "cache")
    assert len({first, second, third}) == 3


def test_engine_is_validated_with_a_clear_error(encoder: Encoder) -> None:
    for make in (lambda: Encoder(encoder.name_or_path, engine="onnx"), lambda: get_encoder(None, engine="int8")):
        with pytest.raises(ValueError, match="engine must be one of torch, onnx-int8; got 'int8'|got 'onnx'"):
            make()


def test_backend_setting_names_the_variable() -> None:
    from backends.config import TEXT_ENCODERS, Settings

    assert set(TEXT_ENCODERS) == set(ENGINES)
    assert Settings.from_env({}).text_encoder == TEXT_ENCODERS[0]
    assert Settings.from_env({"TEXT_ENCODER": " torch "}).text_encoder == "torch"
    assert Settings.from_env({"TEXT_ONNX_DIR": "/x/onnx"}).text_onnx_dir == Path("/x/onnx")
    with pytest.raises(ValueError, match="TEXT_ENCODER must be one of onnx-int8, torch; got 'fast'"):
        Settings.from_env({"TEXT_ENCODER": "fast"})


def test_int8_falls_back_to_torch_where_it_cannot_run(encoder: Encoder, tmp_path: Path, monkeypatch) -> None:
    # A fine-tuned model handed over in memory, and no export folder: PyTorch runs, and says so.
    given = Encoder(encoder.name_or_path, engine="onnx-int8", onnx_dir=tmp_path, model=encoder.model,
                    tokenizer=encoder.tokenizer)
    assert given.engine == "torch" and given.onnx is None
    assert Encoder(encoder.name_or_path, engine="onnx-int8").engine == "torch"

    def broken(*args, **kwargs):
        raise RuntimeError("exporter cannot trace this model")

    monkeypatch.setattr(onnx_int8, "_export_float", broken)
    failed = Encoder(encoder.name_or_path, engine="onnx-int8", onnx_dir=tmp_path / "fresh")
    assert failed.engine == "torch" and failed.encode(["still works"]).shape == (1, failed.dim)
    assert not list((tmp_path / "fresh").glob("*/" + onnx_int8.MODEL_FILE))  # nothing half-made left to reuse


def test_get_encoder_keeps_one_encoder_per_engine(weights_dir: Path, encoder: Encoder, onnx_dir: Path,
                                                  monkeypatch) -> None:
    from collections import OrderedDict

    monkeypatch.setattr(encoder_mod, "_ENCODERS", OrderedDict())
    fast = get_encoder(None, weights_dir, engine="onnx-int8", onnx_dir=onnx_dir, threads=1)
    assert fast.engine == "onnx-int8"
    assert get_encoder(None, weights_dir, engine="onnx-int8", onnx_dir=onnx_dir) is fast
    assert get_encoder(None, weights_dir).engine == "torch"


def test_pad_restores_rows_and_masks() -> None:
    batch = pad({"input_ids": [[101, 7, 102], [101, 102]], "attention_mask": [[1, 1, 1], [1, 1]]}, pad_id=0)
    np.testing.assert_array_equal(batch["input_ids"], [[101, 7, 102], [101, 102, 0]])
    np.testing.assert_array_equal(batch["attention_mask"], [[1, 1, 1], [1, 1, 0]])
    assert batch["input_ids"].dtype == np.int64


def test_length_buckets_restore_the_input_order(int8: Encoder) -> None:
    # Sorted by token count inside, returned in the caller's order.
    texts = sorted(SENTENCES, key=len, reverse=True)
    small = Encoder(int8.name_or_path, engine="onnx-int8", onnx_dir=int8.onnx.path.parent.parent, batch_size=2,
                    cache_bytes=0)
    vectors = small.encode(texts)
    assert small.model_calls == 3
    alone = np.stack([int8.encode([text])[0] for text in texts])
    similarity = vectors @ alone.T
    assert (similarity.argmax(axis=1) == np.arange(len(texts))).all()
    assert similarity.diagonal().min() >= 0.99


def test_backend_passes_engine_folder_and_threads(weights_dir: Path, onnx_dir: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    from collections import OrderedDict

    from backends.adapters import text_cls as adapter_mod
    from backends.config import Settings

    monkeypatch.setattr(encoder_mod, "_ENCODERS", OrderedDict())
    settings = Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, text_onnx_dir=onnx_dir, cpu_threads=1)
    served = adapter_mod.TextClassificationAdapter(settings).encoder()
    assert served.engine == "onnx-int8" and served.onnx.threads == 1 and served.onnx.path.parent.parent == onnx_dir
    seen: list[dict] = []
    monkeypatch.setattr(adapter_mod, "get_encoder", lambda *args, **kwargs: seen.append(kwargs))
    plain = settings.with_overrides(text_encoder="torch", text_onnx_dir=None, cpu_threads=2)
    adapter_mod.TextClassificationAdapter(plain).encoder()
    assert seen == [{"engine": "torch", "onnx_dir": tmp_path / "models" / "text_cls" / "onnx", "threads": 2}]
