from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from text_cls import ControlSpec, Encoder, TextClassifier


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
