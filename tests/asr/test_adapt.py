"""Adaptation: rules and vocabulary learned from corrections, the held-out WER guard, and a real run on speech with
made-up domain terms spoken by espeak-ng."""
from __future__ import annotations

import pytest

from asr.adapt import Adaptation, AdaptationError, Rule, Sample, _held_out, learn, train_adaptation
from asr.engine import DecodeOptions
from asr.metrics import wer
from tests.asr.conftest import speak

TRAIN = ["We deploy the model with Kubeflow on the Zorbitron cluster.",
         "The Zorbitron cluster sends metrics to Kubeflow every night.",
         "Ask Quillmatic to restart the Zorbitron node.",
         "Quillmatic reads logs from Kubeflow pipelines.",
         "Kubeflow and Quillmatic both run on Zorbitron.",
         "The Quillmatic dashboard shows Zorbitron errors.",
         "Tomorrow the Zorbitron team upgrades Kubeflow.",
         "Send the Quillmatic report to the Kubeflow owners."]
NEW = ["Our Kubeflow jobs failed on Zorbitron last week.",
       "Quillmatic found a slow disk in the Zorbitron rack.",
       "Please move the Kubeflow notebooks to Zorbitron.",
       "The new Quillmatic release supports Kubeflow."]


def test_rules_need_recurring_consistent_corrections():
    pairs = [("we run cube flow on morbid tron", "We run Kubeflow on Zorbitron."),
             ("cube flow is slow today", "Kubeflow is slow today."),
             ("the cat sat on morbid tron", "The cat sat on Zorbitron."),
             ("a cat is a cat", "a dog is a cat")]  # "cat" -> "dog" once, while "cat" is right 3 other times
    a = learn(pairs)
    assert {(r.wrong, r.right) for r in a.rules} == {("cube flow", "Kubeflow"), ("morbid tron", "Zorbitron")}
    assert {"Kubeflow", "Zorbitron"} <= set(a.vocabulary) and "cat" not in a.vocabulary
    assert a.apply("Then Cube-flow, and MORBID TRON.") == "Then Kubeflow, and Zorbitron."
    assert a.apply("a cubeflow cube flowing") == "a cubeflow cube flowing"  # whole words only
    assert learn(pairs, min_count=3).rules == []


def test_adaptation_round_trips_through_its_file(tmp_path):
    a = Adaptation(vocabulary=["Kubeflow"], rules=[Rule("cube flow", "Kubeflow", 3)], use_hotwords=False,
                   base_model="tiny.en", metrics={"wer_after": 0.1})
    a.save(tmp_path)
    b = Adaptation.load(tmp_path)
    assert b == a and b.hotwords is None
    b.use_hotwords = True
    assert b.hotwords == "Kubeflow"


def test_guard_publishes_only_what_does_not_make_held_out_worse():
    samples = [Sample(str(i), f"clip{i}", ref) for i, ref in enumerate(
        ["the red car", "the red car", "the red car", "a red car", "red car here", "the red car"])]
    # the decoder hears "read" for "red" everywhere; annotators fix it: rules help
    decode = lambda audio, hotwords: "the read car"  # noqa: E731
    a, metrics, publish, reason = train_adaptation(samples, decode)
    assert publish and metrics["wer_after"] < metrics["wer_before"] and a.apply("the read car") == "the red car"
    assert metrics["n_rules"] == len(a.rules) >= 1 and metrics["n_heldout"] == 2

    # The served parent fixes "read car"; the new annotations only correct it on the held-out files (the others
    # were accepted as heard), so the candidate learns no rule and would be worse there: rejected.
    samples = [Sample(str(i), f"clip{i}", "the read car") for i in range(8)]
    held = _held_out(samples, 0.25)
    for i in held:
        samples[i].reference = "the red car"
    parent = Adaptation(rules=[Rule("read car", "red car", 5)])
    _, metrics, publish, reason = train_adaptation(samples, decode, parent)
    assert not publish and "held-out WER would get worse" in reason
    assert metrics["wer_before"] == 0 and metrics["wer_after"] > 0

    with pytest.raises(AdaptationError, match="at least 3"):
        train_adaptation(samples[:2], decode)
    _, _, publish, reason = train_adaptation([Sample(str(i), "x", "the red car") for i in range(4)],
                                             lambda audio, hw: "the red car")
    assert not publish and "teach nothing" in reason


@pytest.mark.slow
def test_adaptation_lowers_wer_on_new_sentences_with_the_same_terms(transcriber, tmp_path):
    train = [Sample(str(i), speak(s, tmp_path / f"train{i}.wav"), s) for i, s in enumerate(TRAIN)]
    new = [(speak(s, tmp_path / f"new{i}.wav"), s) for i, s in enumerate(NEW)]

    def decode(audio, hotwords):
        return transcriber.transcribe(audio, DecodeOptions(hotwords=hotwords)).text

    adaptation, metrics, publish, reason = train_adaptation(train, decode)
    print("adaptation:", metrics, [(r.wrong, r.right) for r in adaptation.rules], adaptation.vocabulary)
    assert publish, reason
    assert {"Kubeflow", "Zorbitron", "Quillmatic"} <= set(adaptation.vocabulary)
    before = wer([s for _, s in new], [decode(a, None) for a, _ in new])
    after = wer([s for _, s in new], [adaptation.apply(decode(a, adaptation.hotwords)) for a, _ in new])
    print(f"WER on new sentences: {before:.3f} -> {after:.3f}")
    assert after < before - 0.1
