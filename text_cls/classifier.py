"""`TextClassifier`: text classification for one or more choice controls over a shared sentence encoder.

Each control starts zero-shot (similarity to label prototypes) and switches to a logistic-regression head once it
has enough annotated examples; the head's C and the weight it gives zero-shot are chosen by cross-validation, and a
fit can be judged against the served classifier and zero-shot on the same folds (`fit(served=...)`, see
`guard`). A single-choice head keeps its labels' centroids and serves its product with their nearest-centroid
classifier (see `centroids`). The params are `params.DEFAULT_PARAMS`, the controls `controls.ControlSpec`s, the
files on disk `storage`'s.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import centroids, finetune_check, heads, self_training, storage, zero_shot
from .controls import ControlSpec, accuracy, answer_targets, class_counts, has_enough
from .encoder import Encoder
from .guard import judge
from .heads import LinearHead, fit_head
from .params import DEFAULT_PARAMS, merge_params

__all__ = ["DEFAULT_PARAMS", "ControlSpec", "TextClassifier"]


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
        self.params = merge_params(DEFAULT_PARAMS, params)
        self.heads: dict[str, LinearHead] = {}
        self.metrics: dict[str, dict] = {}
        self.finetuned = False
        self.finetune_info: dict[str, Any] = {}
        self.prototypes: dict[str, np.ndarray] = {}  # control -> (n_labels, dim) zero-shot label prototypes
        # control -> (n_labels, dim) centroids of a single-choice head's labeled texts, served with it (`centroids`)
        self.centroids: dict[str, np.ndarray] = {}
        self.null_prototype = np.zeros(encoder.dim, dtype=np.float32)  # "none of these", for multi choice
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
            sum to 1 (with a head and centroids: their product, `centroids.served_product`); multi choice entries
            are independent probabilities.
        """
        embeddings = self.encoder.encode(list(texts))
        return {spec.name: self._proba(spec, embeddings) for spec in self.controls}

    def _proba(self, spec: ControlSpec, embeddings: np.ndarray) -> np.ndarray:
        logits = self._zero_shot_logits(spec, embeddings)
        head = self.heads.get(spec.name)
        if head is not None:
            proba = head.proba(embeddings, logits)
            found = None if spec.multi else self.centroids.get(spec.name)
            if found is None:  # multi choice, or a version saved before centroids were kept: the head alone
                return proba
            # The product with the labels' centroid classifier chose right more often than the head alone at
            # every N measured (bench/results/text_learning.json); labels without labels keep their share.
            return centroids.served_product(proba, centroids.centroid_proba(embeddings, found), head.classes)
        return zero_shot.sigmoid(logits) if spec.multi else zero_shot.softmax(logits)

    def _zero_shot_logits(self, spec: ControlSpec, embeddings: np.ndarray) -> np.ndarray:
        """Softmax inputs (single choice) or per-label sigmoid inputs (multi choice), (n, n_labels)."""
        sims = (embeddings @ self.prototypes[spec.name].T).astype(np.float64)
        p = self.params
        if spec.multi:
            null_sims = (embeddings @ self.null_prototype).astype(np.float64)
            return zero_shot.multi_choice_logits(sims, null_sims, p["multi_margin"], p["multi_temperature"])
        return zero_shot.single_choice_logits(sims, p["zero_shot_temperature"])

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: list[str],
        targets: dict[str, list[list[str] | None]],
        params: dict | None = None,
        served: TextClassifier | None = None,
        *,
        check_finetune: bool = True,
        unlabeled: Sequence[str] = (),
    ) -> dict:
        """Train a head per control that has enough answers; the others stay (or return to) zero-shot.

        Args:
            texts: Training texts.
            targets: Control name -> per text, the chosen labels, or None when the text has no answer for that
                control. For single choice an empty list also counts as no answer, and only the first label is
                used. Controls left out have no answers.
            params: Overrides of the current params (kept for later fits and saved).
            served: The classifier now in use, for the guard: its recipe (C and zero-shot weight of each head; a
                control without a head is zero-shot) is cross-validated on the same folds as the new head's, with
                fold-local centroids where it serves them.
            check_finetune: False fine-tunes without `finetune_check` (the check's own fits).
            unlabeled: Open texts a fine-tune may self-train on (see `self_training`).

        Returns:
            Control name -> {"mode", "n_examples", "classes" (label -> count), "cv_folds", "cv_accuracy",
            "cv_macro_f1", "cv_log_loss" (of the chosen recipe's held-out predictions as served, a single-choice
            head's product with the centroids of its fold's training labels; None when a class is too
            small for 2 folds or the control stays zero-shot), "C", "zero_shot_weight" (the chosen recipe; None
            without a head), "zero_shot_accuracy" (of the zero-shot predictions on the training answers),
            "finetuned" (embeddings from a fine-tuned transformer), "guard" (see `guard.judge`; None without a
            head), and after a self-trained fine-tune "self_trained" (label -> pseudo-labeled open texts)}. After
            fine-tuning, the cross-validation scores are optimistic: the transformer has seen every fold. The
            cross-validated scores are those of the best of several recipes on the same folds, so slightly
            optimistic as well.

        Raises:
            ValueError: Unknown control names, labels outside a control's labels, or length mismatches.
        """
        texts = list(texts)
        data = answer_targets(self.controls, texts, targets)
        old_prompt = self.params["zero_shot_prompt"]
        self.params = merge_params(self.params, params)
        p = self.params

        # Every fit starts again from the base encoder: fine-tunes do not stack, and a fit without fine-tuning
        # after one with it goes back to the pre-trained embeddings.
        if self.encoder is not self.base_encoder or p["zero_shot_prompt"] != old_prompt:
            self.encoder = self.base_encoder
            self.finetuned = False
            self._build_prototypes()
        eligible = {name: has_enough(self._spec(name), y, p["min_examples"], p["min_per_class"])
                    for name, (_, y) in data.items()}
        self.finetune_info = self._maybe_finetune(texts, targets, data, eligible, served, check_finetune,
                                                  list(unlabeled))

        embeddings = self.encoder.encode(list(texts)) if texts else np.zeros((0, self.encoder.dim), np.float32)
        new_heads: dict[str, LinearHead] = {}
        new_centroids: dict[str, np.ndarray] = {}
        metrics: dict[str, dict] = {}
        for spec in self.controls:
            rows, y = data[spec.name]
            head, metrics[spec.name] = self._fit_one(spec, embeddings[rows], y, eligible[spec.name], served)
            if head is not None:
                new_heads[spec.name] = head
                if not spec.multi and p["centroids"]:
                    new_centroids[spec.name] = centroids.class_centroids(embeddings[rows], y,
                                                                         self.prototypes[spec.name])
        self.heads = new_heads
        self.centroids = new_centroids
        self.metrics = metrics
        return metrics

    def _fit_one(self, spec: ControlSpec, E: np.ndarray, y: np.ndarray, eligible: bool,
                 served: TextClassifier | None) -> tuple[LinearHead | None, dict[str, Any]]:
        """One control's head (None: it stays zero-shot) and its metrics (see `fit`)."""
        zs_logits = self._zero_shot_logits(spec, E)
        m: dict[str, Any] = {
            "mode": "zero_shot",
            "n_examples": int(len(y)),
            "classes": class_counts(spec, y),
            "cv_folds": None,
            "cv_accuracy": None,
            "cv_macro_f1": None,
            "cv_log_loss": None,
            "C": None,
            "zero_shot_weight": None,
            "zero_shot_accuracy": accuracy(spec, y, zs_logits) if len(y) else None,
            "finetuned": self.finetuned,
            "guard": None,
        }
        if not eligible:
            return None, m
        head, fitted = self._fit_control(spec, E, zs_logits, y, served)
        m.update(fitted, mode="trained")
        if self.finetuned:  # judged on the held-out fold, not on folds the transformer has seen
            m["guard"] = finetune_check.guard_of(spec, self.finetune_info.get("check") or {}, served)
            m["finetune_examples"] = self.finetune_info.get("examples")  # below n_examples past the cap
            st = self.finetune_info.get("self_training")
            if st is not None:  # the pseudo-labels per label its fine-tune also learned from
                m["self_trained"] = st["labels"].get(spec.name, {})
        return head, m

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
            if not spec.multi and p["centroids"]:  # judged on what it would serve: the product (fold-local centroids)
                oof = centroids.out_of_fold(oof, E, y, self.prototypes[spec.name], splits)
                cv = heads.score(oof, y, spec.multi)
            out.update(cv_folds=len(splits), cv_accuracy=cv["accuracy"], cv_macro_f1=cv["macro_f1"],
                       cv_log_loss=cv["log_loss"])
            if not self.finetuned:  # a fine-tune is judged by finetune_check (see _fit_one)
                recipe = served.recipe(spec) if served is not None else None
                out["guard"] = judge(spec, E, zs_logits, y, splits, cv, oof, recipe, float(p["guard_tolerance"]),
                                     max_iter, self.prototypes[spec.name],
                                     served is not None and served.serves_centroids(spec))
        else:
            # Too few labels per class for two folds: the largest candidates, zero-shot kept at full weight.
            C, weight = max(C_grid), max(prior_grid)
        out.update(C=C, zero_shot_weight=weight)
        return fit_head(E, y, zs_logits, spec.multi, C, weight, max_iter), out

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

    def serves_centroids(self, spec: ControlSpec) -> bool:
        """Whether this classifier serves a control like `spec` as its head's product with centroids."""
        return self.recipe(spec) is not None and not spec.multi and spec.name in self.centroids

    def _maybe_finetune(self, texts: list[str], targets: dict, data: dict, eligible: dict[str, bool],
                        served: TextClassifier | None, check: bool, unlabeled: list[str]) -> dict:
        """Fine-tune when the params ask for it ("auto": once a control with a head has finetune_min_examples
        answers) and, unless `check` is False, `finetune_check` finds it not worse on a held-out fold. A worse
        fine-tune asked for by "auto" is left out; one asked for by True is kept and its guard says worse."""
        p = self.params
        wanted = p["finetune"] is True or (p["finetune"] == "auto" and any(
            eligible[name] and len(rows) >= int(p["finetune_min_examples"]) for name, (rows, _) in data.items()))
        if not wanted:
            return {}
        found = finetune_check.check(self, texts, targets, data, eligible, served, unlabeled) if check else None
        if found is not None and not found["finetune"] and p["finetune"] == "auto":
            return {"finetuned": False, "reason": found["reason"], "check": found}
        return {**self._finetune(texts, targets, data, eligible, unlabeled), **({"check": found} if found else {})}

    def _finetune(self, texts: list[str], targets: dict, data: dict, eligible: dict[str, bool],
                  unlabeled: list[str]) -> dict:
        from .finetune import FinetuneTask, capped

        specs = [spec for spec in self.controls if eligible[spec.name]]
        if not specs:
            return {"finetuned": False, "reason": "no control has enough examples"}
        every = [FinetuneTask(spec.multi, data[spec.name][0], data[spec.name][1], self.prototypes[spec.name])
                 for spec in specs]
        limit, seed = int(self.params["finetune_max_examples"]), int(self.params["seed"])
        tasks = {spec.name: task for spec, task in zip(specs, capped(every, limit, seed))}
        self.encoder = self._tuned(texts, list(tasks.values()))
        answered = len({int(i) for task in tasks.values() for i in task.rows})
        out: dict[str, Any] = {"finetuned": True, "controls": list(tasks), "examples": answered}
        if self_training.wanted(self.params, unlabeled):
            out["self_training"] = self._self_train(texts, targets, data, eligible, unlabeled, tasks)
        self.finetuned = True
        # Prototypes live in the embedding space, which has just moved.
        self._build_prototypes()
        return out

    def _tuned(self, texts: list[str], tasks: list) -> Encoder:
        """The base encoder fine-tuned on `texts` for `tasks`."""
        from .finetune import finetune_encoder

        p = self.params
        return finetune_encoder(
            self.base_encoder,
            texts,
            tasks,
            epochs=int(p["finetune_epochs"]),
            lr=float(p["finetune_lr"]),
            seed=int(p["seed"]),
            batch_size=int(p["finetune_batch_size"]),
            temperature=float(p["zero_shot_temperature"]),
        )

    def _self_train(self, texts: list[str], targets: dict, data: dict, eligible: dict[str, bool],
                    unlabeled: list[str], tasks: dict) -> dict[str, Any]:
        """Fine-tune again, from the base encoder, on the answers and the open texts the model fine-tuned on the
        answers is surest of (`self_training`); self.encoder is that first fine-tune on entry."""
        teacher = TextClassifier(self.encoder, self.controls, {**self.params, "finetune": False})
        teacher.fit(texts, targets)
        rows, labels = self_training.pseudo_labels(teacher, unlabeled, data, eligible, self.params)
        out: dict[str, Any] = {"open_texts": len(unlabeled), "pseudo_labeled": len(rows),
                               "labels": {spec.name: self_training.summary(spec, labels[spec.name])
                                          for spec in self.controls if spec.name in labels}}
        if not rows:
            return out
        n = len(texts)
        extended = []
        for name, task in tasks.items():
            added = labels.get(name)
            if added is None:
                extended.append(task)
                continue
            keep = np.flatnonzero(added >= 0)
            extended.append(replace(task, rows=np.concatenate([task.rows, n + keep]),
                                    targets=np.concatenate([task.targets, added[keep]])))
        self.encoder = self._tuned(texts + [unlabeled[i] for i in rows], extended)
        return out

    # ----------------------------------------------------------------- save/load
    def save(self, directory: str | Path) -> Path:
        """Write the classifier (and a fine-tuned transformer, if any) into a folder.

        Args:
            directory: Created if missing; files of a previous save are overwritten.

        Returns:
            The folder.
        """
        return storage.write(self, directory)

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
        saved = storage.read(directory, encoder)
        self = cls.__new__(cls)
        for name in ("encoder", "base_encoder", "controls", "params", "metrics", "finetuned", "finetune_info",
                     "heads", "prototypes", "null_prototype", "centroids"):
            setattr(self, name, getattr(saved, name))
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
            self.prototypes[spec.name] = zero_shot.build_prototypes(self.encoder, phrases, prompt)
        self.null_prototype = zero_shot.null_prototype(self.encoder, prompt)
