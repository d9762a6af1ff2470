"""Model resolution: local folders, $WEIGHTS_DIR, registry packages (including a model split in two packages),
hub names, openai-whisper checkpoints; one load per process."""
from __future__ import annotations

import sys
import threading

import pytest

from asr import models
from asr.engine import load_engine
from asr.models import FASTER_WHISPER, ModelError, resolve_model


def test_default_resolves_to_weights_dir(weights_dir):
    spec = resolve_model(None, weights_dir)
    assert spec.engine == FASTER_WHISPER and spec.name == "tiny.en" and spec.english_only
    assert spec.source == str((weights_dir / "faster-whisper-tiny.en").resolve())
    # named by size, by hub id, or by its folder: the same model
    assert resolve_model("Systran/faster-whisper-tiny.en", weights_dir).source == spec.source
    assert resolve_model(str(weights_dir / "faster-whisper-tiny.en"), None).source == spec.source


def test_unknown_sizes_fall_back_to_the_hub_name(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "PACKAGES", {})
    assert resolve_model("small", tmp_path).source == "Systran/faster-whisper-small"
    assert resolve_model(None, None).source == "Systran/faster-whisper-tiny.en"
    assert resolve_model("org/custom-whisper", None).source == "org/custom-whisper"


def _fake_package(root, name, files):
    pkg = root / name
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for fname, data in files.items():
        (pkg / "data" / fname).write_bytes(data)


def test_registry_packages_single_and_split(tmp_path, monkeypatch, weights_dir):
    tiny = weights_dir / "faster-whisper-tiny.en"
    blob = (tiny / "model.bin").read_bytes()
    meta = {n: (tiny / n).read_bytes() for n in ("config.json", "tokenizer.json", "vocabulary.txt")}
    site = tmp_path / "site"
    _fake_package(site, "one_piece_pkg", {"model.bin": blob, **meta})
    half = len(blob) // 2
    _fake_package(site, "split_a", {"model.bin.part1": blob[:half]})
    _fake_package(site, "split_b", {"model.bin.part2": blob[half:], **meta})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(models, "PACKAGES", {"tiny.en": ("one_piece_pkg",), "base": ("split_a", "split_b")})
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = resolve_model("tiny.en", tmp_path / "empty")
    assert spec.source == str((site / "one_piece_pkg" / "data").resolve())
    joined = resolve_model("base", None)
    assert joined.source.startswith(str(tmp_path / "home" / ".cache" / "labelloop"))
    assert (models.Path(joined.source) / "model.bin").read_bytes() == blob
    assert resolve_model("base", None) == joined  # joined once, reused
    # the joined model really loads and runs
    engine = load_engine(joined, "cpu", "int8")
    assert engine.model is not None
    # only one of the two parts installed: not usable, the hub name is next
    monkeypatch.setattr(models, "PACKAGES", {"base": ("split_a", "missing_pkg")})
    assert resolve_model("base", None).source == "Systran/faster-whisper-base"
    assert "one_piece_pkg" not in sys.modules  # found without importing


def test_bad_paths_and_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        resolve_model(tmp_path / "missing.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="neither a faster-whisper"):
        resolve_model(tmp_path / "folder")
    pt = tmp_path / "tiny.pt"
    pt.write_bytes(b"not really")
    if models.importlib.util.find_spec("whisper") is None:
        with pytest.raises(ModelError, match="openai-whisper package is not installed"):
            resolve_model(pt)
    else:
        assert resolve_model(pt).engine == models.OPENAI_WHISPER


def test_hub_model_offline_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "PACKAGES", {})
    with pytest.raises(ModelError, match="cannot load Whisper model 'Systran/faster-whisper-small'"):
        load_engine(resolve_model("small", None), "cpu", "int8")


def test_loaded_once_per_process_across_threads(weights_dir):
    spec = resolve_model(None, weights_dir)
    got = []
    threads = [threading.Thread(target=lambda: got.append(load_engine(spec, "cpu", "int8"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in got}) == 1 and got[0].compute_type == "int8"
