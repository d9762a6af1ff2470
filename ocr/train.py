"""Learning from corrected lines, guarded: corrections (and a calibration) are published only when held-out
character error rate is not worse than the served version's."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from . import calibration as cal
from .corrections import Corrections, learn
from .metrics import cer
from .model import OcrModel

MIN_EXAMPLES = 3  # corrected images


class TrainingError(ValueError):
    """Too little usable data to learn from."""


@dataclass
class Pair:
    """A line the base reader recognized and the text the annotator submitted for it."""

    recognized: str
    confidence: float
    reference: str


@dataclass
class Sample:
    """The matched lines of one annotated image; `key` (e.g. the task id) decides the held-out split."""

    key: str
    pairs: list[Pair]


def held_out(samples: Sequence[Sample], fraction: float) -> set[int]:
    """Indices of a stable `fraction` of the samples (at least one), by the hash of their keys."""
    n = max(1, round(len(samples) * fraction))
    order = sorted(range(len(samples)), key=lambda i: hashlib.sha256(samples[i].key.encode()).hexdigest())
    return set(order[:n])


def _pairs(samples: Sequence[Sample]) -> list[Pair]:
    return [p for s in samples for p in s.pairs]


def _cer(pairs: Sequence[Pair], corrections: Corrections | None) -> float:
    hyps = [corrections.apply(p.recognized) if corrections else p.recognized for p in pairs]
    return cer([p.reference for p in pairs], hyps)


def _calibrate(train: list[Pair], test: list[Pair], corrections: Corrections | None) -> tuple[bool, dict]:
    """Whether a calibration fitted on `train` predicts which `test` lines are right better than the raw
    confidence (Brier score), with the two scores."""
    def right(pairs):
        return [(corrections.apply(p.recognized) if corrections else p.recognized).strip() == p.reference.strip()
                for p in pairs]

    fitted = cal.fit([p.confidence for p in train], right(train))
    raw = cal.brier([p.confidence for p in test], right(test)) if test else None
    if fitted is None or raw is None:
        return False, {"brier_raw": None if raw is None else round(raw, 4), "brier_calibrated": None}
    after = cal.brier([fitted(p.confidence) for p in test], right(test))
    return after < raw, {"brier_raw": round(raw, 4), "brier_calibrated": round(after, 4)}


def train(samples: Sequence[Sample], parent: OcrModel | None = None, min_count: int = 2,
          holdout: float = 0.25) -> tuple[OcrModel, dict, bool, str]:
    """Learn corrections (and a calibration) and decide whether to publish them.

    The training split teaches a candidate; on the held-out split the served version's corrections are compared
    with the candidate's two variants (rules only; rules and lexicon); the better variant is then learned again
    from every sample.

    Returns:
        (model, metrics, publish, reason): publish is False when held-out CER would get worse or nothing was learned.

    Raises:
        TrainingError: fewer than MIN_EXAMPLES images with a corrected line.
    """
    usable = [s for s in samples if any(p.reference.strip() for p in s.pairs)]
    if len(usable) < MIN_EXAMPLES:
        raise TrainingError(f"{len(usable)} annotated images with text matched to a recognized line; learning "
                            f"needs at least {MIN_EXAMPLES}")
    held = held_out(usable, holdout)
    train_pairs = _pairs([s for i, s in enumerate(usable) if i not in held])
    test_pairs = _pairs([s for i, s in enumerate(usable) if i in held])
    test_pairs = [p for p in test_pairs if p.reference.strip()] or test_pairs
    candidate = learn([(p.recognized, p.reference) for p in train_pairs], min_count=min_count)
    served = parent.corrections if parent else None
    try:
        cer_base, cer_before = _cer(test_pairs, None), _cer(test_pairs, served)
        candidate.use_lexicon = False
        cer_rules = _cer(test_pairs, candidate)
        candidate.use_lexicon = True
        cer_lexicon = _cer(test_pairs, candidate) if candidate.lexicon else None
    except ValueError as e:
        raise TrainingError(f"no held-out line with text: {e}") from None
    use_lexicon = cer_lexicon is not None and cer_lexicon < cer_rules
    cer_after = cer_lexicon if use_lexicon else cer_rules
    everything = _pairs(usable)
    final = learn([(p.recognized, p.reference) for p in everything], min_count=min_count)
    final.use_lexicon = use_lexicon
    calibrated, cal_metrics = _calibrate(train_pairs, test_pairs, final)
    calibration = cal.fit([p.confidence for p in everything],
                          [final.apply(p.recognized).strip() == p.reference.strip() for p in everything]) \
        if calibrated else None
    metrics = {"cer_base": round(cer_base, 4), "cer_before": round(cer_before, 4), "cer_after": round(cer_after, 4),
               "cer_rules_only": round(cer_rules, 4),
               "cer_rules_and_lexicon": None if cer_lexicon is None else round(cer_lexicon, 4),
               "n_rules": len(final.rules), "lexicon_size": len(final.lexicon), "lexicon": use_lexicon,
               "calibrated": calibration is not None, **cal_metrics, "n_lines": len(everything),
               "n_train": len(usable) - len(held), "n_heldout": len(held)}
    model = OcrModel(final, calibration, metrics)
    if cer_after > cer_before:
        return model, metrics, False, (f"held-out CER would get worse: {cer_after:.4f} against {cer_before:.4f} "
                                       "for the served version")
    if not final.rules and not (use_lexicon and final.lexicon) and calibration is None:
        return model, metrics, False, "the corrections teach nothing: no recurring correction, no useful lexicon"
    return model, metrics, True, ""
