"""A text classifier's params: their defaults and the check of the ones a caller overrides."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import zero_shot

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    # A control's head replaces zero-shot once it has min_examples answers and two classes with min_per_class each.
    "min_examples": 10,
    "min_per_class": 2,
    # Inverse L2 strength on unit-length embeddings: "auto" picks it from heads.C_GRID by cross-validation.
    "C": "auto",
    # Weight of the zero-shot logits in a head: "auto" picks it from heads.PRIOR_GRID by cross-validation.
    "prior_weight": "auto",
    "max_iter": 2000,
    "cv_folds": 5,
    "seed": 0,
    # Fine-tune the transformer on the answers: "auto" once a control with a head has finetune_min_examples of
    # them (bench/results/text_score.json), true, or false. Judged on a held-out fold (finetune_check).
    "finetune": "auto",
    "finetune_min_examples": 40,
    "finetune_epochs": 3,
    "finetune_lr": 3e-5,
    "finetune_batch_size": 16,
    # A fine-tune (and the check's) learns from at most this many answered texts, a seeded uniform sample, so a
    # training run's time stays bounded as a project grows; heads and centroids still learn from every answer.
    "finetune_max_examples": 5000,
    # A fine-tune self-trains on the open texts it is given (see self_training.py): the most confident, up to
    # self_training_multiple per answer and self_training_max in all, join a second fine-tune;
    # self_training_pool: how many open texts a training run reads at most.
    "self_training": True,
    "self_training_multiple": 5,
    "self_training_max": 1000,
    "self_training_pool": 5000,
    "zero_shot_prompt": zero_shot.DEFAULT_PROMPT,
    "zero_shot_temperature": zero_shot.DEFAULT_TEMPERATURE,
    "multi_margin": zero_shot.DEFAULT_MULTI_MARGIN,
    "multi_temperature": zero_shot.DEFAULT_MULTI_TEMPERATURE,
    # Heads learn a correction to the zero-shot logits (see heads.py); False: plain logistic regression.
    "prior": True,
    # A single-choice head serves its product with its labels' centroid classifier (see centroids.py); False: the
    # head alone, as versions saved before centroids were kept.
    "centroids": True,
    # The guard (fit(served=...)) calls a fit worse when its cross-validated accuracy is below the served
    # classifier's or zero-shot's on the same folds by more than this and more than one standard error.
    "guard_tolerance": 0.0,
}

# Yes/no params, and whether each also takes "auto".
_SWITCHES = {"finetune": True, "prior": False, "centroids": False, "self_training": False}
# Params that are "auto" (chosen by cross-validation) or a number in a range.
_AUTO_OR_NUMBER = {"C": (1e-6, 1e6), "prior_weight": (0.0, 10.0), "guard_tolerance": (0.0, 1.0)}


def merge_params(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` with `overrides` applied.

    Raises:
        ValueError: naming the param, for a C, prior_weight or guard_tolerance out of range, or a switch that is
            not true or false.
    """
    merged = dict(base)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_PARAMS:
            # Kept (and saved) so callers can pass shared params, but worth a trace when it is a typo.
            log.debug("text_cls: unknown param %r ignored", key)
        elif key in _AUTO_OR_NUMBER:
            value = _auto_or_number(key, value, *_AUTO_OR_NUMBER[key])
        elif key in _SWITCHES:
            value = _switch(key, value)
        merged[key] = value
    return merged


def _switch(key: str, value: Any) -> bool | str:
    """Raises ValueError naming the param unless value is a bool or "true"/"false" (a string "false" is truthy),
    or "auto" where the switch takes it."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "false"):
        return text == "true"
    if text == "auto" and _SWITCHES[key]:
        return "auto"
    allowed = 'true, false or "auto"' if _SWITCHES[key] else "true or false"
    raise ValueError(f"{key!r} must be {allowed}, got {str(value)[:40]!r}")


def _auto_or_number(key: str, value: Any, lo: float, hi: float) -> str | float:
    """Raises ValueError naming the param unless value is "auto" or a number in [lo, hi]."""
    if value == "auto" and key != "guard_tolerance":
        return value
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not lo <= number <= hi:
        allowed = f"a number from {lo:g} to {hi:g}" + ("" if key == "guard_tolerance" else ' or "auto"')
        raise ValueError(f"{key!r} must be {allowed}, got {str(value)[:40]!r}")
    return number
