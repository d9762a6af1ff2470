"""Whether fine-tuning the transformer helps, judged on labels it has not seen.

Cross-validation in a fine-tuned space is overfit: the transformer has seen every fold (after 120 TREC-6 labels,
zero-shot in the fine-tuned space is right on 95 % of the training texts), so the guard's folds cannot judge a
fine-tuned fit. One stratified fold of the labels (about a fifth) is held out instead: the transformer is
fine-tuned on the rest and its head fit there, and on the held-out labels it is compared, label by label, with the
same fit without fine-tuning, the served version's recipe (on the pre-trained embeddings: a served fine-tune is not
repeated) and zero-shot, all trained on the same rest. Worse is `guard.worse_by`: beyond one standard error.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import heads
from .controls import ControlSpec
from .guard import worse_by

if TYPE_CHECKING:
    from .classifier import TextClassifier

WITHOUT = "the same fit without fine-tuning"


def held_out(clf: TextClassifier, data: Mapping[str, tuple[np.ndarray, np.ndarray]],
             eligible: Mapping[str, bool]) -> np.ndarray | None:
    """Sorted indices of the texts to hold out: the first fold of the first eligible control's labels (single
    choice first: stratified by label); None when no control has folds."""
    order = sorted((spec for spec in clf.controls if eligible.get(spec.name)), key=lambda spec: spec.multi)
    for spec in order:
        rows, y = data[spec.name]
        splits = heads.folds(y, spec.multi, int(clf.params["seed"]), int(clf.params["cv_folds"]))
        if splits:
            return np.sort(rows[splits[0][1]])
    return None


def check(clf: TextClassifier, texts: Sequence[str], targets: Mapping[str, Sequence[Any]],
          data: Mapping[str, tuple[np.ndarray, np.ndarray]], eligible: Mapping[str, bool],
          served: TextClassifier | None, unlabeled: Sequence[str] = ()) -> dict[str, Any]:
    """Fine-tune without a held-out fold and judge it there (see the module's docstring); with open texts, the
    fine-tune self-trains on them as the served one will (`self_training`), so the check judges that recipe.

    Args:
        clf: The classifier being fit (its base encoder, controls and merged params).
        texts, targets: What `TextClassifier.fit` was given.
        data: `controls.answer_targets` of them; eligible: the controls that get a head.
        served: The classifier now in use, or None.
        unlabeled: The open texts `TextClassifier.fit` was given.

    Returns:
        {"finetune" (bool: not worse than any reference), "held_out" (texts), "controls": {control: {side:
        known accuracy on its held-out labels}}, "labels" ({control: held-out labels}), "reason" (why it is
        worse, else "")}.
    """
    held = held_out(clf, data, eligible)
    if held is None:
        return {"finetune": False, "held_out": 0, "controls": {}, "labels": {},
                "reason": "too few labels per class to hold a fold out"}
    rest = np.setdiff1d(np.arange(len(texts)), held)
    part_texts = [texts[i] for i in rest]
    part_targets = {name: [answers[i] for i in rest] for name, answers in targets.items()}
    test_texts = [texts[i] for i in held]
    tuned = _fit(clf, clf.controls, part_texts, part_targets, {"finetune": True}, unlabeled)
    sides = {"fine-tuned": tuned.predict_proba(test_texts),
             WITHOUT: _fit(clf, clf.controls, part_texts, part_targets, {"finetune": False}).predict_proba(test_texts),
             "zero-shot": _zero_shot(clf).predict_proba(test_texts)}
    out: dict[str, Any] = {"held_out": int(len(held)), "controls": {}, "labels": {}}
    reasons = []
    tolerance = float(clf.params["guard_tolerance"])
    for spec in clf.controls:
        rows, y = data[spec.name]
        inside = np.isin(rows, held)
        if not eligible.get(spec.name) or not inside.any():
            continue
        at, y_held = np.searchsorted(held, rows[inside]), y[inside]
        probas = {side: found[spec.name][at] for side, found in sides.items()}
        recipe = served.recipe(spec) if served is not None else None
        if recipe is not None:
            params = {"finetune": False, "C": recipe[0], "prior_weight": recipe[1],
                      "centroids": served.serves_centroids(spec)}
            answers = {spec.name: part_targets[spec.name]}  # an eligible control has answers
            probas["the served version"] = _fit(clf, [spec], part_texts, answers, params).predict_proba(
                test_texts)[spec.name][at]
        correct = {side: heads.known_correct(p, y_held, spec.multi) for side, p in probas.items()}
        out["controls"][spec.name] = {side: round(float(c.mean()), 4) for side, c in correct.items()}
        out["labels"][spec.name] = int(inside.sum())
        for side, theirs in correct.items():
            margin = None if side == "fine-tuned" else worse_by(correct["fine-tuned"], theirs, tolerance)
            if margin is not None:
                reasons.append(f"{spec.name}: fine-tuned accuracy {correct['fine-tuned'].mean():.3f} below {side}'s "
                               f"{theirs.mean():.3f} on {int(inside.sum())} held-out labels (by more than "
                               f"{margin:.3f}, one standard error)")
    return {"finetune": not reasons, **out, "reason": "; ".join(reasons)}


def guard_of(spec: ControlSpec, found: Mapping[str, Any], served: TextClassifier | None) -> dict[str, Any] | None:
    """A fine-tuned control's guard record (`guard.judge`'s keys) from the check's result; None where the check
    did not judge the control."""
    scores = (found.get("controls") or {}).get(spec.name)
    if scores is None:
        return None
    mode = "trained" if served is not None and served.recipe(spec) is not None else "zero_shot"
    return {"metric": "known_accuracy", "on": f"{found['labels'][spec.name]} held-out labels (fine-tuned without them)",
            "candidate": {"known_accuracy": scores["fine-tuned"]},
            "served": {"known_accuracy": scores.get("the served version", scores["zero-shot"])},
            "zero_shot": {"known_accuracy": scores["zero-shot"]},
            "without_finetuning": {"known_accuracy": scores[WITHOUT]},
            "served_mode": mode, "worse": not found["finetune"], "reason": found["reason"]}


def _fit(clf: TextClassifier, controls: Sequence[ControlSpec], texts: list[str], targets: Mapping[str, Sequence[Any]],
         params: Mapping[str, Any], unlabeled: Sequence[str] = ()) -> TextClassifier:
    from .classifier import TextClassifier

    other = TextClassifier(clf.base_encoder, list(controls), {**clf.params, **params})
    other.fit(texts, dict(targets), check_finetune=False, unlabeled=unlabeled)
    return other


def _zero_shot(clf: TextClassifier) -> TextClassifier:
    from .classifier import TextClassifier

    return TextClassifier(clf.base_encoder, clf.controls, clf.params)
