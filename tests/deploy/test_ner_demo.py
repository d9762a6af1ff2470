"""The ner demo project: its config is one the ner backend serves, its sentences come from CoNLL-2003 or the
committed file, and examples/ner.yaml renders the same template."""
from __future__ import annotations

from backends.adapters.ner import NERAdapter
from backends.config import Settings
from ops import demo_data
from ops.demo_project import DEMOS
from scripts.labelloop_sync import config


def test_the_demo_config_and_the_example_are_served_by_the_ner_backend():
    backend = NERAdapter(Settings())
    backend.check_config(DEMOS["ner"].label_config)
    example = config.load("examples/ner.yaml")
    backend.check_config(example.label_config)
    assert 'toName="text"' in example.label_config and "$text" in example.label_config


def test_sentences_fall_back_to_the_committed_file(monkeypatch, tmp_path):
    monkeypatch.setattr(demo_data, "CONLL_FILE", tmp_path / "missing.txt")
    tasks, source = demo_data.sentences(5)
    assert source.endswith("demo_sentences.jsonl") and len(tasks) == 5 and all(t["text"] for t in tasks)
    tasks, _ = demo_data.sentences(1000)
    assert any("😀" in t["text"] for t in tasks) and any("\r\n" in t["text"] for t in tasks)


def test_sentences_come_from_conll_when_it_is_there(datasets_dir):
    tasks, source = demo_data.sentences(20)
    assert source.endswith("dev.txt") and len(tasks) == 20
    assert all(len(t["text"].split()) >= 6 for t in tasks)
