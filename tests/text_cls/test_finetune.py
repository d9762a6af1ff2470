from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from text_cls import ControlSpec, Encoder, TextClassifier, self_training


@pytest.mark.slow
def test_finetune_one_epoch_saves_and_reloads(tmp_path: Path, encoder: Encoder, trec, trec_spec: ControlSpec) -> None:
    texts, labels = trec["train"]
    texts, labels = texts[:20], labels[:20]
    spec = ControlSpec(trec_spec.name, trec_spec.labels, descriptions=trec_spec.descriptions)
    clf = TextClassifier(encoder, [spec], {"finetune": True, "finetune_epochs": 1, "min_per_class": 1, "seed": 1})
    metrics = clf.fit(texts, {spec.name: [[y] for y in labels]})[spec.name]
    assert metrics["mode"] == "trained" and metrics["finetuned"] is True and clf.finetuned
    assert metrics["zero_shot_weight"] == 0.0  # zero-shot scores of a fine-tune are overfit: not used as a prior
    assert clf.encoder is not encoder and clf.base_encoder is encoder
    # The shared pre-trained encoder is untouched, and the fine-tuned one embeds differently.
    probe = ["What is the capital of Peru ?", "Who invented the telephone ?"]
    assert np.abs(clf.encoder.encode(probe) - encoder.encode(probe)).max() > 1e-4
    expected = clf.predict_proba(probe)[spec.name]
    np.testing.assert_allclose(expected.sum(axis=1), 1.0)

    clf.save(tmp_path / "v")
    assert (tmp_path / "v" / "encoder" / "config.json").is_file()
    loaded = TextClassifier.load(tmp_path / "v", encoder)
    assert loaded.finetuned and loaded.encoder is not encoder
    np.testing.assert_allclose(loaded.predict_proba(probe)[spec.name], expected, atol=1e-5)

    # A refit without fine-tuning goes back to the pre-trained encoder.
    assert loaded.fit(texts, {spec.name: [[y] for y in labels]}, {"finetune": False})[spec.name]["finetuned"] is False
    assert loaded.encoder is encoder


def _labeled(trec, classes: tuple[str, ...], per_class: int, seed: int = 0) -> tuple[list[str], list[str]]:
    texts, labels = trec["train"]
    rng = np.random.default_rng(seed)
    rows = [i for c in classes for i in rng.choice([j for j, y in enumerate(labels) if y == c], per_class, False)]
    return [texts[i] for i in rows], [labels[i] for i in rows]


@pytest.mark.slow
def test_auto_finetunes_from_min_examples_judged_on_a_held_out_fold(encoder: Encoder, trec,
                                                                    trec_spec: ControlSpec) -> None:
    texts, labels = _labeled(trec, tuple(trec_spec.labels), 7)  # 42 answers, every class
    params = {"finetune_epochs": 1}
    below = TextClassifier(encoder, [trec_spec], {**params, "finetune_min_examples": 43})
    assert below.fit(texts, {trec_spec.name: [[y] for y in labels]})[trec_spec.name]["finetuned"] is False
    assert below.finetune_info == {}

    clf = TextClassifier(encoder, [trec_spec], params)
    assert clf.params["finetune"] == "auto"
    metrics = clf.fit(texts, {trec_spec.name: [[y] for y in labels]})[trec_spec.name]
    check = clf.finetune_info["check"]
    assert clf.finetuned and metrics["finetuned"] and check["finetune"] and check["reason"] == ""
    # One stratified fold of the labels (a fifth: 7 a class, 5 folds -> one or two a class) was held out.
    assert check["held_out"] == check["labels"][trec_spec.name] and 6 <= check["held_out"] <= 12
    sides = check["controls"][trec_spec.name]
    assert set(sides) == {"fine-tuned", "the same fit without fine-tuning", "zero-shot"}
    guard = metrics["guard"]
    assert guard["worse"] is False and "held-out" in guard["on"]
    assert guard["candidate"]["known_accuracy"] == sides["fine-tuned"]
    assert guard["zero_shot"]["known_accuracy"] == sides["zero-shot"]


@pytest.mark.slow
def test_a_fine_tune_worse_on_the_held_out_fold_is_left_out_or_rejected(encoder: Encoder, trec,
                                                                        trec_spec: ControlSpec) -> None:
    texts, labels = _labeled(trec, tuple(trec_spec.labels), 7)
    answers = {trec_spec.name: [[y] for y in labels]}
    # A learning rate that wrecks the transformer: the check must see it on labels the fine-tune did not see.
    wrecked = {"finetune_epochs": 2, "finetune_lr": 0.05}
    clf = TextClassifier(encoder, [trec_spec], wrecked)
    served = TextClassifier(encoder, [trec_spec], {"finetune": False})
    served.fit(texts, answers)
    metrics = clf.fit(texts, answers, served=served)[trec_spec.name]
    info = clf.finetune_info
    assert not clf.finetuned and info["finetuned"] is False and "below" in info["reason"]
    assert "the served version" in info["check"]["controls"][trec_spec.name]
    assert clf.encoder is encoder and metrics["guard"] is not None and not metrics["guard"]["worse"]

    forced = TextClassifier(encoder, [trec_spec], {**wrecked, "finetune": True})
    metrics = forced.fit(texts, answers, served=served)[trec_spec.name]
    assert forced.finetuned and metrics["guard"]["worse"] and "held-out labels" in metrics["guard"]["reason"]


@pytest.mark.slow
def test_finetuning_on_some_classes_keeps_the_others_zero_shot_evidence(encoder: Encoder, trec) -> None:
    names = {"HUM": "Human", "LOC": "Location", "NUM": "Numeric", "DESC": "Description"}
    classes = list(names.values())
    spec = ControlSpec("label", classes)
    test = [(t, names[y]) for t, y in zip(*trec["test"]) if y in names]
    texts, labels = _labeled(trec, ("NUM", "DESC"), 20)

    def recall(clf: TextClassifier) -> dict[str, float]:
        predicted = clf.predict_proba([t for t, _ in test])["label"].argmax(axis=1)
        return {c: float(np.mean([classes[p] == c for p, (_, y) in zip(predicted, test) if y == c])) for c in classes}

    before = recall(TextClassifier(encoder, [spec]))
    clf = TextClassifier(encoder, [spec], {"finetune": True, "finetune_epochs": 2})
    clf.fit(texts, {"label": [[names[y]] for y in labels]})
    after = recall(clf)
    assert clf.finetuned
    # A fine-tune over every label took Human's recall from 0.51 to 0.18; over the used labels it stays.
    for c in ("Human", "Location"):
        assert after[c] >= 0.75 * before[c], (c, before, after)
    assert after["Numeric"] > before["Numeric"]


def test_the_loss_uses_the_labels_the_answers_use() -> None:
    from text_cls.finetune import FinetuneTask, _used_labels

    single = FinetuneTask(False, np.arange(3), np.array([0, 2, 2]), np.zeros((4, 2)))
    assert _used_labels(single, 4).tolist() == [True, False, True, False]
    multi = FinetuneTask(True, np.arange(2), np.array([[0, 1, 0], [0, 1, 1]]), np.zeros((3, 2)))
    assert _used_labels(multi, 3).tolist() == [False, True, True]


def test_a_fine_tune_learns_from_a_bounded_sample_of_the_answers() -> None:
    from text_cls.finetune import FinetuneTask, capped

    single = FinetuneTask(False, np.arange(10), np.arange(10) % 3, np.zeros((3, 2)))
    multi = FinetuneTask(True, np.arange(5, 15), np.eye(10, 4)[np.arange(10) % 4], np.zeros((4, 2)))
    assert capped([single, multi], 15, seed=0) == [single, multi]  # 15 texts answered: all kept
    first, second = capped([single, multi], 6, seed=0)
    chosen = set(first.rows.tolist()) | set(second.rows.tolist())
    assert len(chosen) == 6 and chosen <= set(range(15))
    # each task keeps exactly its answers among the chosen texts, with their own targets
    assert first.rows.tolist() == sorted(chosen & set(range(10)))
    assert first.targets.tolist() == [i % 3 for i in first.rows]
    assert second.rows.tolist() == sorted(chosen & set(range(5, 15)))
    np.testing.assert_array_equal(second.targets, np.eye(10, 4)[(second.rows - 5) % 4])
    again = capped([single, multi], 6, seed=0)
    assert [t.rows.tolist() for t in again] == [first.rows.tolist(), second.rows.tolist()]
    assert {tuple(t.rows) for t in capped([single, multi], 6, seed=1)} != {tuple(first.rows), tuple(second.rows)}


@pytest.mark.slow
def test_past_finetune_max_examples_the_transformer_sees_a_sample_and_the_head_every_answer(
        encoder: Encoder, trec, trec_spec: ControlSpec) -> None:
    texts, labels = _labeled(trec, ("HUM", "LOC", "NUM"), 12)
    clf = TextClassifier(encoder, [trec_spec], {"finetune": True, "finetune_epochs": 1, "finetune_max_examples": 20,
                                                "self_training": False})
    metrics = clf.fit(texts, {trec_spec.name: [[y] for y in labels]}, check_finetune=False)[trec_spec.name]
    assert clf.finetuned and clf.finetune_info["examples"] == 20
    assert metrics["finetune_examples"] == 20 and metrics["n_examples"] == 36


@pytest.mark.slow
def test_a_fine_tune_self_trains_on_the_open_texts_it_is_surest_of(encoder: Encoder, trec, trec_spec: ControlSpec,
                                                                   monkeypatch) -> None:
    texts, labels = _labeled(trec, ("HUM", "LOC"), 10)
    answers = {trec_spec.name: [[y] for y in labels]}
    open_texts = trec["test"][0][:200]
    calls = []
    real = self_training.pseudo_labels
    monkeypatch.setattr(self_training, "pseudo_labels", lambda *a: calls.append(len(a[1])) or real(*a))
    params = {"finetune": True, "finetune_epochs": 1, "self_training_multiple": 1}
    clf = TextClassifier(encoder, [trec_spec], params)
    metrics = clf.fit(texts, answers, unlabeled=open_texts)[trec_spec.name]
    info = clf.finetune_info["self_training"]
    assert info["open_texts"] == 200 and info["pseudo_labeled"] == 20
    # only labels the answers use get pseudo-labels, balanced
    assert info["labels"][trec_spec.name] == {"HUM": 10, "LOC": 10}
    # the check's fine-tune (on four fifths of the answers) self-trains too: it judges what is served
    assert calls == [200, 200]
    # the heads, their cross-validation and the guard see the annotators' answers only
    assert metrics["n_examples"] == 20 and metrics["classes"] == {"HUM": 10, "LOC": 10}
    assert metrics["self_trained"] == {"HUM": 10, "LOC": 10}

    alone = TextClassifier(encoder, [trec_spec], {**params, "self_training": False})
    alone.fit(texts, answers, unlabeled=open_texts, check_finetune=False)
    assert "self_training" not in alone.finetune_info and alone.finetuned
    probe = ["What is the capital of Peru ?", "Who invented the telephone ?"]
    assert np.abs(clf.encoder.encode(probe) - alone.encoder.encode(probe)).max() > 1e-4
