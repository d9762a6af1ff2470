"""The text backend's adapter with the real MiniLM encoder: what it loads, what it fetches, what it keeps of
zero-shot, and the publish guard."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.adapters import text_cls as adapter_mod
from backends.adapters.text_cls import TextClassificationAdapter
from backends.base import LabeledTask
from backends.config import Settings
from backends.exceptions import BadRequest
from ops.sample_data import read_trec

NAMES = {"HUM": "Human", "LOC": "Location", "NUM": "Numeric", "DESC": "Description"}
CONFIG = ('<View><Text name="question" value="$question"/><Choices name="topic" toName="question">'
          + "".join(f'<Choice value="{v}"/>' for v in NAMES.values()) + "</Choices></View>")


@pytest.fixture(scope="module")
def backend(weights_dir: Path, tmp_path_factory) -> TextClassificationAdapter:
    tmp = tmp_path_factory.mktemp("text")
    return TextClassificationAdapter(Settings(model_dir=tmp / "models", media_cache_dir=tmp / "media",
                                              weights_dir=weights_dir))


@pytest.fixture(scope="module")
def questions(datasets_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """TREC questions of 4 classes: (label, question), a training pool and a test set."""
    def rows(name: str) -> list[tuple[str, str]]:
        texts, coarse = read_trec(datasets_dir / "text" / "trec" / name)
        return [(NAMES[c], q) for q, c in zip(texts, coarse) if c in NAMES]

    return {"train": rows("train_5500.label"), "test": rows("TREC_10.label")}


def _examples(rows: list[tuple[str, str]]) -> list[LabeledTask]:
    return [LabeledTask(task_id=i + 1, data={"question": q}, annotation_id=i + 1,
                        result=[{"from_name": "topic", "to_name": "question", "type": "choices",
                                 "value": {"choices": [label]}}]) for i, (label, q) in enumerate(rows)]


def _balanced(rows: list[tuple[str, str]], labels, per_class: int, skip: int = 0) -> list[tuple[str, str]]:
    out = []
    for label in labels:
        out += [r for r in rows if r[0] == label][skip:skip + per_class]
    return out


def _predicted(backend, model, rows) -> list[str]:
    tasks = [{"id": i, "data": {"question": q}} for i, (_, q) in enumerate(rows)]
    return [p.result[0]["value"]["choices"][0] for p in backend.predict(model, tasks, CONFIG)]


def _recall(predicted: list[str], rows, label: str) -> float:
    hits = [p == label for p, (y, _) in zip(predicted, rows) if y == label]
    return sum(hits) / len(hits)


def test_labels_of_two_classes_keep_the_other_two_predicted(backend, questions, tmp_path):
    # Before: 12 labels of Numeric and Description erased Human and Location (recall 0.80 / 0.45 -> 0.00).
    test = questions["test"]
    before = _predicted(backend, None, test)
    result = backend.fit(_examples(_balanced(questions["train"], ("Numeric", "Description"), 6)), CONFIG, None,
                         tmp_path / "v1")
    assert result.metrics["question"]["topic"]["classes"] == {"Numeric": 6, "Description": 6}
    # Judged on the two labels it knows: the gate gives Human and Location zero-shot's share in every candidate.
    assert result.publish, result.reason
    after = _predicted(backend, backend.load_model(tmp_path / "v1"), test)
    for label in ("Human", "Location"):
        assert _recall(before, test, label) > 0.3
        assert _recall(after, test, label) >= 0.75 * _recall(before, test, label), label


def test_the_guard_rejects_a_worse_head_and_publishes_a_better_one(backend, questions, tmp_path):
    labels = tuple(NAMES.values())
    served_dir = tmp_path / "served"
    first = backend.fit(_examples(_balanced(questions["train"], labels, 10)), CONFIG, None, served_dir)
    assert first.publish, first.reason
    guard = first.metrics["question"]["topic"]["guard"]
    assert guard["served_mode"] == "zero_shot" and not guard["worse"]
    served = backend.load_model(served_dir)
    more = _examples(_balanced(questions["train"], labels, 15))
    # A head that can barely move (C tiny, no zero-shot), served alone (no centroids): worse than the served
    # version's product on the same folds. (With its centroids, C tiny is not worse: they learn from the labels;
    # nor with a fine-tuned transformer, which separates the classes: test_finetune.py judges fine-tunes.)
    worse = backend.fit(more, CONFIG, served, tmp_path / "worse",
                        params={"C": 1e-4, "prior_weight": 0, "centroids": False, "finetune": False})
    assert not worse.publish
    assert "below the served version's" in worse.reason
    guard = worse.metrics["question"]["topic"]["guard"]
    assert guard["worse"] and guard["served_mode"] == "trained"
    assert guard["candidate"]["known_accuracy"] < guard["served"]["known_accuracy"]
    better = backend.fit(more, CONFIG, served, tmp_path / "better")
    assert better.publish, better.reason


def test_model_param_names_only_the_base_model_or_allowed_folders(backend, tmp_path):
    task = [{"id": 1, "data": {"question": "Who wrote Hamlet?"}}]
    for bad in ("/etc", "../all-MiniLM-L6-v2", str(tmp_path), "bert-base-uncased", 7):
        with pytest.raises(BadRequest, match="'model' must be"):
            backend.predict(None, task, CONFIG, params={"model": bad})
    for good in (None, "", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert backend.predict(None, task, CONFIG, params={"model": good})[0].error is None
    allowing = TextClassificationAdapter(Settings(model_dir=tmp_path / "m", weights_dir=backend.settings.weights_dir,
                                                  allowed_weights=("all-MiniLM-*",)))
    assert allowing.model_name({"model": "all-MiniLM-L6-v2"}) == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(BadRequest):
        allowing.model_name({"model": "all-MiniLM-missing"})  # allowed by name, but no such folder


def test_zero_shot_cache_is_keyed_by_params_and_bounded(backend, monkeypatch):
    monkeypatch.setattr(adapter_mod, "MAX_ZERO_SHOT", 2)
    task = [{"id": 1, "data": {"question": "Where is Paris?"}}]
    sharp = backend.predict(None, task, CONFIG, params={"zero_shot_temperature": 0.01})[0].score
    soft = backend.predict(None, task, CONFIG, params={"zero_shot_temperature": 1.0})[0].score
    assert sharp != soft  # the first caller's params no longer decide for everyone
    backend.predict(None, task, CONFIG, params={"zero_shot_temperature": 0.5})
    assert len(backend._zero_shot) == 2
    with pytest.raises(BadRequest, match="'C'"):
        backend.predict(None, task, CONFIG, params={"C": "abc"})


class _Media:
    """Stands in for the media fetcher: records what it was asked for."""

    def __init__(self):
        self.fetched: list[str] = []

    def is_url(self, value: str) -> bool:
        return value.startswith("http")

    def fetch_text(self, value: str) -> str:
        self.fetched.append(value)
        return "Where is the Eiffel Tower?"


def test_only_a_url_valued_object_is_fetched(backend):
    media = _Media()
    task = [{"id": 1, "data": {"question": "http://example.com is down again, who runs it?"}}]
    assert backend.predict(None, task, CONFIG, media=media)[0].error is None
    assert media.fetched == []  # a text that starts with a link is still text
    url_config = CONFIG.replace('value="$question"/>', 'value="$question" valueType="url"/>')
    (answer,) = backend.predict(None, [{"id": 2, "data": {"question": "http://example.com/q.txt"}}], url_config,
                                media=media)
    assert media.fetched == ["http://example.com/q.txt"]
    assert answer.result[0]["value"]["choices"] == ["Location"]
    np.testing.assert_array_equal(True, answer.error is None)


def test_open_tasks_wanted_follow_the_self_training_params(backend):
    assert backend.open_tasks_wanted({}) == 5000
    assert backend.open_tasks_wanted({"self_training_pool": 300}) == 300
    assert backend.open_tasks_wanted({"self_training": False}) == 0
    assert backend.open_tasks_wanted({"finetune": False}) == 0
    assert backend.open_tasks_wanted({"self_training": "maybe"}) == 0  # fit names the bad param


def test_fit_gives_the_classifier_the_inline_texts_of_the_open_tasks(backend, questions, tmp_path, monkeypatch):
    seen = []
    real = adapter_mod.train_field
    monkeypatch.setattr(adapter_mod, "train_field", lambda *a: seen.append(a[-1]) or real(*a))
    examples = _examples(_balanced(questions["train"], tuple(NAMES.values()), 3))
    open_tasks = [{"id": 100, "data": {"question": "Where is Lima ?"}}, {"id": 101, "data": {"question": 5}},
                  {"id": 102, "data": {"other": "no question"}}, {"id": 103, "data": {"question": "Who is he ?"}}]
    result = backend.fit(examples, CONFIG, None, tmp_path / "v", open_tasks=open_tasks)
    assert result.publish and result.metrics["question"]["open_texts"] == 2
    assert seen == [["Where is Lima ?", "Who is he ?"]]
    assert "open_texts" not in backend.fit(examples, CONFIG, None, tmp_path / "w").metrics["question"]
    # linked texts are not fetched for self-training
    url_config = CONFIG.replace('value="$question"/>', 'value="$question" valueType="url"/>')
    assert adapter_mod._open_texts(open_tasks, adapter_mod._controls(url_config)[0]) == []
