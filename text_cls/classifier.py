"""Text classification for one or more choice controls over a shared sentence encoder.

Each control starts zero-shot (similarity to label prototypes) and switches to a logistic-regression head once it
has enough annotated examples; the head's C and the weight it gives zero-shot are chosen by cross-validation, and a
fit can be judged against the served classifier and zero-shot on the same folds (`fit(served=...)`). Saved models are a JSON file plus an `.npz` of arrays (no pickle), and the
fine-tuned transformer when there is one.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score

from . import zero_shot
from .encoder import DEFAULT_MODEL, Encoder, get_encoder
from . import heads
from .heads import LinearHead, fit_head

log = logging.getLogger(__name__)

FORMAT = "labelloop.text_cls"
FORMAT_VERSION = 1
CONFIG_FILE = "text_classifier.json"
ARRAYS_FILE = "text_classifier.npz"
ENCODER_DIR = "encoder"

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
    "finetune": False,
    "finetune_epochs": 3,
    "finetune_lr": 3e-5,
    "finetune_batch_size": 16,
    "zero_shot_prompt": zero_shot.DEFAULT_PROMPT,
    "zero_shot_temperature": zero_shot.DEFAULT_TEMPERATURE,
    "multi_margin": zero_shot.DEFAULT_MULTI_MARGIN,
    "multi_temperature": zero_shot.DEFAULT_MULTI_TEMPERATURE,
    # Heads learn a correction to the zero-shot logits (see heads.py); False: plain logistic regression.
    "prior": True,
    # The guard (fit(served=...)) calls a fit worse when its cross-validated accuracy is below the served
    # classifier's or zero-shot's on the same folds by more than this and more than one standard error.
    "guard_tolerance": 0.0,
}


@dataclass
class ControlSpec:
    """One Label Studio choice control.

    Attributes:
        name: The control's name (key of targets and predictions).
        labels: Its choices, in the order probabilities are returned.
        multi: Several choices allowed (independent probabilities) or exactly one (rows sum to 1).
        descriptions: Label -> extra phrases or synonyms for zero-shot; the label name is always used as well.
    """

    name: str
    labels: list[str]
    multi: bool = False
    descriptions: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = [str(label) for label in self.labels]
        if not self.labels:
            raise ValueError(f"control {self.name!r} has no labels")
        duplicates = sorted({label for label in self.labels if self.labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"control {self.name!r} repeats labels {duplicates}")
        unknown = sorted(set(self.descriptions) - set(self.labels))
        if unknown:
            raise ValueError(f"control {self.name!r} has descriptions for unknown labels {unknown}")
        # A bare string is one phrase, not a list of characters.
        self.descriptions = {
            label: [phrases] if isinstance(phrases, str) else [str(p) for p in phrases]
            for label, phrases in self.descriptions.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlSpec:
        """Inverse of `dataclasses.asdict`."""
        return cls(
            data["name"], list(data["labels"]), bool(data.get("multi", False)), dict(data.get("descriptions") or {})
        )


class TextClassifier:
    """Zero-shot or trained classification of texts for several choice controls sharing one encoder.

    Labels without a training example keep their zero-shot probability until they are annotated: a single-choice
    head shares out only the probability zero-shot gives the labels it has seen, and a multi-choice label never
    chosen in training keeps its zero-shot sigmoid.

    Args:
        encoder: Sentence encoder (shared; see `get_encoder`).
        controls: The controls to predict, with unique names.
        params: Overrides of `DEFAULT_PARAMS`.
    """

    def __init__(self, encoder: Encoder, controls: list[ControlSpec], params: dict | None = None) -> None:
        names = [c.name for c in controls]
        if len(set(names)) != len(names):
            raise ValueError(f"control names must be unique, got {names}")
        if not controls:
            raise ValueError("at least one control is needed")
        self.encoder = encoder
        # The pre-trained encoder that fine-tuning starts from (self.encoder differs once fine-tuned).
        self.base_encoder = encoder
        self.controls = list(controls)
        self.params = _merge_params(DEFAULT_PARAMS, params)
        self.heads: dict[str, LinearHead] = {}
        self.metrics: dict[str, dict] = {}
        self.finetuned = False
        self.finetune_info: dict[str, Any] = {}
        self._prototypes: dict[str, np.ndarray] = {}
        self._null = np.zeros(encoder.dim, dtype=np.float32)
        self._build_prototypes()

    def __repr__(self) -> str:
        modes = {c.name: self.mode(c.name) for c in self.controls}
        return f"TextClassifier({modes}, encoder={self.encoder!r})"

    # ---------------------------------------------------------------- prediction
    def mode(self, control: str) -> str:
        """'trained' when the control has a head, else 'zero_shot'."""
        self._spec(control)
        return "trained" if control in self.heads else "zero_shot"

    def predict_proba(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Probabilities per control.

        Args:
            texts: Texts to classify.

        Returns:
            Control name -> (len(texts), len(labels)) float64 array in the control's label order. Single choice rows
            sum to 1; multi choice entries are independent probabilities.
        """
        embeddings = self.encoder.encode(list(texts))
        return {spec.name: self._proba(spec, embeddings) for spec in self.controls}

    def _proba(self, spec: ControlSpec, embeddings: np.ndarray) -> np.ndarray:
        logits = self._zero_shot_logits(spec, embeddings)
        head = self.heads.get(spec.name)
        if head is not None:
            return head.proba(embeddings, logits)
        return zero_shot.sigmoid(logits) if spec.multi else zero_shot.softmax(logits)

    def _zero_shot_logits(self, spec: ControlSpec, embeddings: np.ndarray) -> np.ndarray:
        """Softmax inputs (single choice) or per-label sigmoid inputs (multi choice), (n, n_labels)."""
        sims = (embeddings @ self._prototypes[spec.name].T).astype(np.float64)
        p = self.params
        if spec.multi:
            null_sims = (embeddings @ self._null).astype(np.float64)
            return zero_shot.multi_choice_logits(sims, null_sims, p["multi_margin"], p["multi_temperature"])
        return zero_shot.single_choice_logits(sims, p["zero_shot_temperature"])

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: list[str],
        targets: dict[str, list[list[str] | None]],
        params: dict | None = None,
        served: TextClassifier | None = None,
    ) -> dict:
        """Train a head per control that has enough answers; the others stay (or return to) zero-shot.

        Args:
            texts: Training texts.
            targets: Control name -> per text, the chosen labels, or None when the text has no answer for that
                control. For single choice an empty list also counts as no answer, and only the first label is
                used. Controls left out have no answers.
            params: Overrides of the current params (kept for later fits and saved).
            served: The classifier now in use, for the guard: its recipe (C and zero-shot weight of each head; a
                control without a head is zero-shot) is cross-validated on the same folds as the new head's.

        Returns:
            Control name -> {"mode", "n_examples", "classes" (label -> count), "cv_folds", "cv_accuracy",
            "cv_macro_f1", "cv_log_loss" (of the chosen recipe's held-out predictions; None when a class is too
            small for 2 folds or the control stays zero-shot), "C", "zero_shot_weight" (the chosen recipe; None
            without a head), "zero_shot_accuracy" (of the zero-shot predictions on the training answers),
            "finetuned" (embeddings from a fine-tuned transformer), "guard" (see `_guard`; None without a
            head)}. After fine-tuning, the cross-validation scores are optimistic: the transformer has seen every
            fold. The cross-validated scores are those of the best of several recipes on the same folds, so
            slightly optimistic as well.

        Raises:
            ValueError: Unknown control names, labels outside a control's labels, or length mismatches.
        """
        texts = list(texts)
        data = self._targets(texts, targets)
        old_prompt = self.params["zero_shot_prompt"]
        self.params = _merge_params(self.params, params)
        p = self.params

        # Every fit starts again from the base encoder: fine-tunes do not stack, and a fit without fine-tuning
        # after one with it goes back to the pre-trained embeddings.
        if self.encoder is not self.base_encoder or p["zero_shot_prompt"] != old_prompt:
            self.encoder = self.base_encoder
            self.finetuned = False
            self._build_prototypes()
        eligible = {name: self._eligible(self._spec(name), rows, y) for name, (rows, y) in data.items()}
        metrics: dict[str, dict] = {}
        self.finetune_info = self._finetune(texts, data, eligible) if p["finetune"] else {}

        embeddings = self.encoder.encode(list(texts)) if texts else np.zeros((0, self.encoder.dim), np.float32)
        new_heads: dict[str, LinearHead] = {}
        for spec in self.controls:
            rows, y = data[spec.name]
            E = embeddings[rows]
            zs_logits = self._zero_shot_logits(spec, E)
            m: dict[str, Any] = {
                "mode": "zero_shot",
                "n_examples": int(len(rows)),
                "classes": _class_counts(spec, y),
                "cv_folds": None,
                "cv_accuracy": None,
                "cv_macro_f1": None,
                "cv_log_loss": None,
                "C": None,
                "zero_shot_weight": None,
                "zero_shot_accuracy": _accuracy(spec, y, zs_logits) if len(rows) else None,
                "finetuned": self.finetuned,
                "guard": None,
            }
            if eligible[spec.name]:
                head, fitted = self._fit_control(spec, E, zs_logits, y, served)
                new_heads[spec.name] = head
                m.update(fitted, mode="trained")
            metrics[spec.name] = m
        self.heads = new_heads
        self.metrics = metrics
        return metrics

    def _grids(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The C and zero-shot weight candidates the params allow."""
        p = self.params
        C_grid = heads.C_GRID if p["C"] == "auto" else (float(p["C"]),)
        # After fine-tuning, zero-shot scores on the training texts are overfit (TREC-6, 120 labels: 0.95 train
        # accuracy), so a head would trust them too much: 0.86 test accuracy with them, 0.88 without.
        if not p["prior"] or self.finetuned:
            prior_grid: tuple[float, ...] = (0.0,)
        else:
            prior_grid = heads.PRIOR_GRID if p["prior_weight"] == "auto" else (float(p["prior_weight"]),)
        return C_grid, prior_grid

    def _fit_control(
        self, spec: ControlSpec, E: np.ndarray, zs_logits: np.ndarray, y: np.ndarray, served: TextClassifier | None
    ) -> tuple[LinearHead, dict[str, Any]]:
        """Choose the recipe on held-out folds, judge it, then fit it on every example."""
        p = self.params
        max_iter = int(p["max_iter"])
        C_grid, prior_grid = self._grids()
        splits = heads.folds(y, spec.multi, int(p["seed"]), int(p["cv_folds"]))
        out: dict[str, Any] = {}
        if splits:
            C, weight, cv, oof = heads.select(E, zs_logits, y, spec.multi, splits, C_grid, prior_grid, max_iter)
            out.update(cv_folds=len(splits), cv_accuracy=cv["accuracy"], cv_macro_f1=cv["macro_f1"],
                       cv_log_loss=cv["log_loss"])
            out["guard"] = self._guard(spec, E, zs_logits, y, splits, cv, oof, served)
        else:
            # Too few labels per class for two folds: the largest candidates, zero-shot kept at full weight.
            C, weight = max(C_grid), max(prior_grid)
        out.update(C=C, zero_shot_weight=weight)
        return fit_head(E, y, zs_logits, spec.multi, C, weight, max_iter), out

    def _guard(
        self, spec: ControlSpec, E: np.ndarray, zs_logits: np.ndarray, y: np.ndarray, splits: list,
        candidate: dict[str, float], candidate_proba: np.ndarray, served: TextClassifier | None,
    ) -> dict[str, Any]:
        """The new head against the served classifier's recipe and zero-shot, on the same held-out folds.

        Judged by accuracy among the labels the answers use ("known_accuracy", see `heads.score`): all three give
        the other labels zero-shot's probability.

        Returns:
            {"metric", "candidate", "served", "zero_shot" (scores, see `heads.score`), "served_mode", "worse"
            (bool), "reason" (why it is worse, else "")}.
        """
        zs_proba = zero_shot.sigmoid(zs_logits) if spec.multi else zero_shot.softmax(zs_logits)
        references = [("zero-shot", zs_proba)]
        recipe = served.recipe(spec) if served is not None else None
        if recipe is not None:
            proba = heads.out_of_fold(E, zs_logits, y, spec.multi, splits, *recipe, int(self.params["max_iter"]))
            references.insert(0, ("the served version", proba))
        mine = heads.known_correct(candidate_proba, y, spec.multi)
        tolerance = float(self.params["guard_tolerance"])
        scores: dict[str, dict[str, float]] = {}
        reasons = []
        for name, proba in references:
            scores[name] = heads.score(proba, y, spec.multi)
            # Worse means worse beyond the folds' noise: the mean paired difference per label below minus one
            # standard error (and the tolerance). With a dozen labels a head level with zero-shot is kept.
            diff = mine - heads.known_correct(proba, y, spec.multi)
            margin = max(tolerance, float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0)
            if diff.mean() < -margin:
                reasons.append(f"{spec.name}: cross-validated accuracy {candidate['known_accuracy']:.3f} below "
                               f"{name}'s {scores[name]['known_accuracy']:.3f} on the same {len(splits)} folds of "
                               f"{len(y)} labels (by more than {margin:.3f}, one standard error)")
        served_mode = "trained" if recipe is not None else "zero_shot"
        zs_scores = scores["zero-shot"]
        served_scores = scores.get("the served version", zs_scores)
        metric = "known_accuracy"
        return {"metric": metric, "candidate": candidate, "served": served_scores, "zero_shot": zs_scores,
                "served_mode": served_mode, "worse": bool(reasons), "reason": "; ".join(reasons)}

    def recipe(self, spec: ControlSpec) -> tuple[float, float] | None:
        """(C, zero-shot weight) of this classifier's head for a control like `spec` (same name, labels and
        kind), or None when it has none."""
        own = next((s for s in self.controls if s.name == spec.name), None)
        head = self.heads.get(spec.name)
        if own is None or head is None or own.labels != spec.labels or own.multi != spec.multi:
            return None
        m = self.metrics.get(spec.name) or {}
        # Versions saved before C was chosen per fit used a fixed C of 10.
        C = m.get("C") or (self.params["C"] if self.params["C"] != "auto" else 10.0)
        weight = float(head.prior_scale.max()) if len(head.prior_scale) else 0.0
        return float(C), weight

    def _targets(
        self, texts: list[str], targets: Mapping[str, Sequence[list[str] | None]]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per control: indices of the texts with an answer, and their targets (indices, or 0/1 rows if multi)."""
        known = {c.name for c in self.controls}
        unknown_controls = sorted(set(targets) - known)
        if unknown_controls:
            raise ValueError(f"targets for unknown controls {unknown_controls}; known: {sorted(known)}")
        problems = []
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for spec in self.controls:
            answers = targets.get(spec.name)
            if answers is None:
                answers = [None] * len(texts)
            if isinstance(answers, str) or len(answers) != len(texts):
                raise ValueError(f"control {spec.name!r}: expected a list of {len(texts)} answers")
            # A bare label is accepted for a one-label answer.
            answers = [[answer] if isinstance(answer, str) else answer for answer in answers]
            index = {label: i for i, label in enumerate(spec.labels)}
            unknown = sorted({str(label) for answer in answers if answer for label in answer} - set(index))
            if unknown:
                problems.append(f"control {spec.name!r}: unknown labels {unknown} (known: {spec.labels})")
                continue
            rows = []
            ys: list[Any] = []
            for i, answer in enumerate(answers):
                if answer is None:
                    continue
                if spec.multi:
                    row = np.zeros(len(spec.labels), dtype=np.int64)
                    row[[index[label] for label in answer]] = 1
                    ys.append(row)
                elif answer:
                    ys.append(index[answer[0]])
                else:
                    continue
                rows.append(i)
            if spec.multi:
                y = np.array(ys, dtype=np.int64).reshape(len(rows), len(spec.labels))
            else:
                y = np.array(ys, dtype=np.int64)
            out[spec.name] = (np.array(rows, dtype=np.int64), y)
        if problems:
            raise ValueError("; ".join(problems))
        return out

    def _eligible(self, spec: ControlSpec, rows: np.ndarray, y: np.ndarray) -> bool:
        """Enough data for a head: min_examples answers and two classes with min_per_class examples each.

        For multi choice the two classes are a label's presence and absence: some label must be chosen at least
        min_per_class times and left out at least min_per_class times.
        """
        n, need = len(rows), int(self.params["min_per_class"])
        if n == 0 or n < int(self.params["min_examples"]):
            return False
        if spec.multi:
            positives = y.sum(axis=0)
            return bool(((positives >= need) & (n - positives >= need)).any())
        return int((np.bincount(y, minlength=len(spec.labels)) >= need).sum()) >= 2

    def _finetune(self, texts: list[str], data: dict, eligible: dict[str, bool]) -> dict:
        from .finetune import FinetuneTask, finetune_encoder

        tasks = [
            FinetuneTask(spec.multi, data[spec.name][0], data[spec.name][1], self._prototypes[spec.name])
            for spec in self.controls
            if eligible[spec.name]
        ]
        if not tasks:
            return {"finetuned": False, "reason": "no control has enough examples"}
        p = self.params
        self.encoder = finetune_encoder(
            self.encoder,
            texts,
            tasks,
            epochs=int(p["finetune_epochs"]),
            lr=float(p["finetune_lr"]),
            seed=int(p["seed"]),
            batch_size=int(p["finetune_batch_size"]),
            temperature=float(p["zero_shot_temperature"]),
        )
        self.finetuned = True
        # Prototypes live in the embedding space, which has just moved.
        self._build_prototypes()
        return {"finetuned": True, "controls": [spec.name for spec in self.controls if eligible[spec.name]]}

    # ----------------------------------------------------------------- save/load
    def save(self, directory: str | Path) -> Path:
        """Write the classifier (and a fine-tuned transformer, if any) into a folder.

        Args:
            directory: Created if missing; files of a previous save are overwritten.

        Returns:
            The folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"null": self._null}
        heads: dict[str, Any] = {}
        for i, spec in enumerate(self.controls):
            arrays[f"prototypes_{i}"] = self._prototypes[spec.name]
            head = self.heads.get(spec.name)
            if head is None:
                heads[spec.name] = None
                continue
            arrays[f"coef_{i}"] = head.coef
            arrays[f"intercept_{i}"] = head.intercept
            arrays[f"prior_scale_{i}"] = head.prior_scale
            heads[spec.name] = {"classes": [spec.labels[j] for j in head.classes]}
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "controls": [asdict(spec) for spec in self.controls],
            "params": self.params,
            "encoder": {
                "name_or_path": self.encoder.name_or_path,
                "dim": self.encoder.dim,
                "max_length": self.encoder.max_length,
                "finetuned": self.finetuned,
            },
            "heads": heads,
            "metrics": self.metrics,
            "finetune_info": self.finetune_info,
        }
        if self.finetuned:
            self.encoder.model.save_pretrained(directory / ENCODER_DIR)
            self.encoder.tokenizer.save_pretrained(directory / ENCODER_DIR)
        np.savez(directory / ARRAYS_FILE, **arrays)
        # The JSON last: its presence marks a complete save.
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_json_default))
        return directory

    @classmethod
    def load(cls, directory: str | Path, encoder: Encoder | None = None) -> TextClassifier:
        """Read a classifier written by `save`.

        Args:
            directory: The folder given to `save`.
            encoder: Encoder to use for a model that was not fine-tuned; None loads the saved model name through
                `get_encoder`. A fine-tuned model always loads its own transformer from the folder.

        Returns:
            The classifier, predicting exactly as when it was saved.
        """
        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text())
        if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory} does not hold a {FORMAT} v{FORMAT_VERSION} model")
        enc_info = config["encoder"]
        base_encoder = encoder
        if enc_info.get("finetuned"):
            base = encoder
            encoder = Encoder(
                str(directory / ENCODER_DIR),
                device=base.device if base is not None else None,
                batch_size=base.batch_size if base is not None else 64,
                max_length=int(enc_info.get("max_length", 256)),
            )
        elif encoder is None:
            encoder = _encoder_for(enc_info["name_or_path"])
        if encoder.dim != int(enc_info["dim"]):
            raise ValueError(f"encoder dim {encoder.dim} does not match the saved model's {enc_info['dim']}")

        self = cls.__new__(cls)
        self.encoder = encoder
        # A refit starts from the encoder passed in (normally the pre-trained one), else from the fine-tune.
        self.base_encoder = base_encoder if base_encoder is not None else encoder
        self.finetune_info = config.get("finetune_info") or {}
        self.controls = [ControlSpec.from_dict(c) for c in config["controls"]]
        self.params = _merge_params(DEFAULT_PARAMS, config["params"])
        self.metrics = config.get("metrics") or {}
        self.finetuned = bool(enc_info.get("finetuned"))
        self.heads = {}
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
            self._null = arrays["null"]
            self._prototypes = {spec.name: arrays[f"prototypes_{i}"] for i, spec in enumerate(self.controls)}
            for i, spec in enumerate(self.controls):
                info = config["heads"].get(spec.name)
                if info is None:
                    continue
                classes = np.array([spec.labels.index(label) for label in info["classes"]], dtype=np.int64)
                self.heads[spec.name] = LinearHead(
                    spec.multi, classes, arrays[f"coef_{i}"], arrays[f"intercept_{i}"], arrays[f"prior_scale_{i}"]
                )
        return self

    # ------------------------------------------------------------------- helpers
    def _spec(self, control: str) -> ControlSpec:
        for spec in self.controls:
            if spec.name == control:
                return spec
        raise KeyError(f"unknown control {control!r}")

    def _build_prototypes(self) -> None:
        prompt = str(self.params["zero_shot_prompt"])
        for spec in self.controls:
            phrases = [zero_shot.label_phrases(label, spec.descriptions.get(label, ())) for label in spec.labels]
            self._prototypes[spec.name] = zero_shot.build_prototypes(self.encoder, phrases, prompt)
        self._null = zero_shot.null_prototype(self.encoder, prompt)


def _merge_params(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_PARAMS:
            # Kept (and saved) so callers can pass shared params, but worth a trace when it is a typo.
            log.debug("text_cls: unknown param %r ignored", key)
        elif key in _AUTO_OR_NUMBER:
            value = _auto_or_number(key, value, *_AUTO_OR_NUMBER[key])
        merged[key] = value
    return merged


# Params that are "auto" (chosen by cross-validation) or a number in a range.
_AUTO_OR_NUMBER = {"C": (1e-6, 1e6), "prior_weight": (0.0, 10.0), "guard_tolerance": (0.0, 1.0)}


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


def _class_counts(spec: ControlSpec, y: np.ndarray) -> dict[str, int]:
    if len(y) == 0:
        return {}
    counts = y.sum(axis=0) if spec.multi else np.bincount(y, minlength=len(spec.labels))
    return {label: int(c) for label, c in zip(spec.labels, counts) if c > 0}


def _accuracy(spec: ControlSpec, y: np.ndarray, logits: np.ndarray) -> float:
    if spec.multi:
        return float(((logits >= 0) == (y > 0)).all(axis=1).mean())
    return float(accuracy_score(y, logits.argmax(axis=1)))


def _encoder_for(name_or_path: str) -> Encoder:
    # A saved absolute path may not exist on this machine (another host, a moved venv): the default model is then
    # found again by name, through weights_dir-free resolution (package, then hub).
    if Path(name_or_path).exists():
        return get_encoder(name_or_path)
    if Path(name_or_path).name == DEFAULT_MODEL.rsplit("/", 1)[-1]:
        return get_encoder(DEFAULT_MODEL)
    return get_encoder(name_or_path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
