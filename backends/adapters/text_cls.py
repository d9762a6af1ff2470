"""Label Studio side of text classification: `<Text>` with `<Choices>` (single or multiple) or `<Taxonomy>`."""
from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from selection import combine, names
from selection import get_measure as get_strategy  # the measure behind a strategy's per-task score
from text_cls.classifier import ControlSpec, TextClassifier
from text_cls.encoder import DEFAULT_MODEL, Encoder, get_encoder

from ..base import Backend, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData, UnsupportedConfig
from ..labels import Control, find_controls, task_text
from ..params import Number, OneOf, allowed_weights_folder

log = logging.getLogger(__name__)

PATH_SEP = " / "  # joins a Taxonomy path into one class name
MULTI_THRESHOLD = Number("multi_threshold", 0, 1)
UNCERTAINTY = OneOf("uncertainty", tuple(names()))
# The classifier's numeric options (text_cls.DEFAULT_PARAMS), so a bad one is a 400 at /setup, not a failed
# training run later. C and prior_weight also take "auto" and are checked where the classifier reads them.
NUMBERS = (Number("min_examples", 1, 100_000, integer=True), Number("min_per_class", 1, 10_000, integer=True),
           Number("max_iter", 10, 100_000, integer=True), Number("cv_folds", 2, 20, integer=True),
           Number("seed", 0, 2**31 - 1, integer=True), Number("finetune_epochs", 1, 100, integer=True),
           Number("finetune_lr", 1e-8, 1.0), Number("finetune_batch_size", 1, 1024, integer=True),
           Number("zero_shot_temperature", 1e-4, 100.0), Number("multi_margin", -1.0, 1.0),
           Number("multi_temperature", 1e-4, 100.0), Number("guard_tolerance", 0.0, 1.0))
# Names `params.model` may give the base encoder by; other models only from WEIGHTS_DIR through ALLOWED_WEIGHTS.
BASE_MODEL_NAMES = (DEFAULT_MODEL, DEFAULT_MODEL.rsplit("/", 1)[-1])
MAX_ZERO_SHOT = 64  # zero-shot classifiers kept (one per model, control and zero-shot params)
# The params that change a zero-shot classifier: part of its cache key.
ZERO_SHOT_PARAMS = ("zero_shot_prompt", "zero_shot_temperature", "multi_margin", "multi_temperature")


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("choices", "taxonomy"), ("text", "hypertext"), backend="text_cls"))


@lru_cache(maxsize=64)
def _taxonomy_paths(label_config: str, name: str) -> tuple[tuple[str, ...], ...]:
    """Every leaf path of the Taxonomy called `name`, root first."""
    root = ET.fromstring(label_config)
    node = next((t for t in root.iter("Taxonomy") if t.get("name") == name), None)
    paths: list[tuple[str, ...]] = []

    def walk(elem: ET.Element, prefix: tuple[str, ...]) -> None:
        for child in elem.findall("Choice"):
            path = prefix + (child.get("value") or child.get("alias") or "",)
            if child.find("Choice") is None:
                paths.append(path)
            else:
                walk(child, path)

    if node is not None:
        walk(node, ())
    return tuple(paths)


def _spec(control: Control, label_config: str) -> ControlSpec:
    if control.tag == "taxonomy":
        paths = _taxonomy_paths(label_config, control.name)
        labels = [PATH_SEP.join(p) for p in paths]
        return ControlSpec(name=control.name, labels=labels, multi=False,
                           descriptions={PATH_SEP.join(p): [p[-1]] for p in paths})
    return ControlSpec(name=control.name, labels=list(control.labels), multi=control.multi,
                       descriptions={lb: control.synonyms(lb) for lb in control.labels if control.synonyms(lb)})


def _answer(control: Control, item: dict) -> list[str] | None:
    """The labels an annotation result item chose for `control`, or None when it is not for this control."""
    if item.get("from_name") != control.name:
        return None
    value = item.get("value") or {}
    if control.tag == "taxonomy":
        return [PATH_SEP.join(p) for p in value.get("taxonomy") or [] if p][:1]
    return list(value.get("choices") or [])


class TextModel:
    """What a trained version holds: one classifier per text field the config labels."""

    def __init__(self, classifiers: dict[str, TextClassifier]):
        self.classifiers = classifiers


class TextClassificationBackend(Backend):
    """Pre-annotates Choices/Taxonomy on text: zero-shot until enough labels exist, then a trained head."""

    name = "text_cls"
    PARAMS = (MULTI_THRESHOLD, UNCERTAINTY, *NUMBERS)  # checked at /setup and /predict (backends/params.py)

    def __init__(self, settings):
        super().__init__(settings)
        self._zero_shot: OrderedDict[tuple, TextClassifier] = OrderedDict()
        self._lock = threading.Lock()

    # -- config -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        controls = _controls(label_config)
        for c in controls:
            if c.tag == "taxonomy" and not _taxonomy_paths(label_config, c.name):
                raise UnsupportedConfig(f"<Taxonomy name={c.name!r}> has no <Choice> entries")
            if c.tag == "choices" and not c.labels:
                raise UnsupportedConfig(f"<Choices name={c.name!r}> has no <Choice> entries")

    def model_name(self, params: dict | None = None) -> str:
        """The encoder `params.model` names: the base model, or a folder of WEIGHTS_DIR allowed by ALLOWED_WEIGHTS.

        Raises:
            BadRequest: any other value (a path, an unknown or disallowed name).
        """
        name = (params or {}).get("model")
        if name is None or name == "" or name in BASE_MODEL_NAMES:
            return DEFAULT_MODEL
        if allowed_weights_folder(name, self.settings.weights_dir, self.settings.allowed_weights, "config.json"):
            return name
        shown = name[:80] if isinstance(name, str) else type(name).__name__
        raise BadRequest(f"'model' must be {DEFAULT_MODEL!r} or a folder of WEIGHTS_DIR that ALLOWED_WEIGHTS "
                         f"lists, got {shown!r}")

    def encoder(self, params: dict | None = None) -> Encoder:
        name = self.model_name(params)
        try:
            return get_encoder(name, self.settings.weights_dir)
        except (OSError, ValueError, EnvironmentError) as e:
            raise ModelUnavailable(f"the text model {name!r} could not be loaded: {e}") from None

    # -- serving ------------------------------------------------------------------------------------------
    def load_model(self, version_dir: Path | None) -> TextModel | None:
        if version_dir is None:
            self.encoder()  # load the transformer now, not on the first request
            return None
        groups = sorted(p for p in Path(version_dir).iterdir() if p.is_dir() and p.name.startswith("field-"))
        if not groups:
            raise LabelloopError(f"{version_dir} holds no text classifier")
        return TextModel({p.name[len("field-"):]: TextClassifier.load(p, self.encoder()) for p in groups})

    def _classifier_for(self, model: TextModel | None, control: Control, spec: ControlSpec,
                        params: dict) -> TextClassifier:
        trained = model.classifiers.get(control.value_key) if model else None
        if trained is not None:
            own = next((s for s in trained.controls if s.name == spec.name), None)
            if own is not None and own.labels == spec.labels and trained.mode(spec.name) == "trained":
                return trained
        encoder = self.encoder(params)
        # Everything a zero-shot classifier depends on: the model, the control and the zero-shot params.
        key = (encoder.name_or_path, spec.name, tuple(spec.labels), spec.multi,
               tuple(sorted((k, tuple(v)) for k, v in spec.descriptions.items())),
               tuple(repr(params.get(k)) for k in ZERO_SHOT_PARAMS))
        with self._lock:
            found = self._zero_shot.get(key)
            if found is None:
                try:
                    found = TextClassifier(encoder, [spec], params)
                except ValueError as e:
                    raise BadRequest(f"params: {e}") from None
                self._zero_shot[key] = found
                while len(self._zero_shot) > MAX_ZERO_SHOT:
                    self._zero_shot.popitem(last=False)
            self._zero_shot.move_to_end(key)
            return found

    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        controls = _controls(label_config)
        strategy = get_strategy(UNCERTAINTY.read(params) or self.settings.uncertainty)
        answers = [TaskPrediction() for _ in tasks]
        confidences: list[list[float]] = [[] for _ in tasks]
        threshold = MULTI_THRESHOLD.read(params, default=0.5)
        for control in controls:
            spec = _spec(control, label_config)
            texts, rows = [], []
            for i, task in enumerate(tasks):
                if answers[i].error is not None:
                    continue
                try:
                    texts.append(task_text(task, control, media))
                    rows.append(i)
                except LabelloopError as e:
                    answers[i].error = str(e)
            if not texts:
                continue
            probs = self._classifier_for(model, control, spec, params).predict_proba(texts)[spec.name]
            conf = strategy(probs, multi_label=spec.multi)
            for row, p, c in zip(rows, probs, conf):
                if spec.multi:
                    chosen = [spec.labels[j] for j in np.flatnonzero(p >= threshold)] or [spec.labels[int(p.argmax())]]
                else:
                    chosen = [spec.labels[int(p.argmax())]]
                if control.tag == "taxonomy":
                    value = {"taxonomy": [label.split(PATH_SEP) for label in chosen]}
                else:
                    value = {"choices": chosen}
                answers[row].result.append({"from_name": control.name, "to_name": control.to_name,
                                            "type": control.tag, "value": value, "score": float(c)})
                confidences[row].append(float(c))
        for answer, conf in zip(answers, confidences):
            if answer.error is None:
                answer.score = float(combine([np.array([c]) for c in conf])[0]) if conf else None
        return answers

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The sentence embedding of the text the first control labels (a fine-tuned encoder's when trained)."""
        control = _controls(label_config)[0]
        trained = model.classifiers.get(control.value_key) if model else None
        encoder = trained.encoder if trained is not None else self.encoder(params)
        out = [TaskEmbedding() for _ in tasks]
        texts, rows = [], []
        for i, task in enumerate(tasks):
            try:
                texts.append(task_text(task, control, media))
                rows.append(i)
            except LabelloopError as e:
                out[i].error = str(e)
        for row, vector in zip(rows, encoder.encode(texts) if texts else []):
            out[row].vector = [round(float(x), 6) for x in vector]
        return out

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        controls = _controls(label_config)
        by_field: dict[str, list[Control]] = {}
        for c in controls:
            by_field.setdefault(c.value_key, []).append(c)
        metrics: dict[str, Any] = {}
        trained_any, used = False, 0
        verdicts: list[str] = []  # why the new version is worse than the served one or zero-shot
        for key, group in by_field.items():
            specs = [_spec(c, label_config) for c in group]
            texts: list[str] = []
            targets: dict[str, list[list[str] | None]] = {s.name: [] for s in specs}
            unknown: dict[str, int] = {}
            for ex in examples:
                try:
                    text = task_text({"id": ex.task_id, "data": ex.data}, group[0], media)
                except LabelloopError as e:
                    log.warning("training example skipped: %s", e)
                    continue
                row: dict[str, list[str] | None] = {}
                for control, spec in zip(group, specs):
                    chosen = None
                    for item in ex.result:
                        answer = _answer(control, item)
                        if answer is not None:
                            chosen = answer
                    if chosen is not None and any(lb not in spec.labels for lb in chosen):
                        # the config no longer has this label: the example says nothing about the current classes
                        for lb in chosen:
                            if lb not in spec.labels:
                                unknown[lb] = unknown.get(lb, 0) + 1
                        chosen = None
                    row[spec.name] = chosen or None
                if all(v is None for v in row.values()):
                    continue
                texts.append(text)
                for name, v in row.items():
                    targets[name].append(v)
            if not texts:
                continue
            served = parent.classifiers.get(key) if isinstance(parent, TextModel) else None
            try:
                clf = TextClassifier(self.encoder(params), specs, params)
                field_metrics = clf.fit(texts, targets, params, served=served)
            except ValueError as e:
                raise BadRequest(f"training parameters: {e}") from None
            verdicts += [m["guard"]["reason"] for m in field_metrics.values() if (m.get("guard") or {}).get("worse")]
            if unknown:
                field_metrics["skipped_unknown_labels"] = unknown
                log.warning("annotations with labels the config no longer has were skipped: %s", unknown)
            metrics[key] = field_metrics
            used = max(used, len(texts))
            if any(clf.mode(s.name) == "trained" for s in specs):
                trained_any = True
                clf.save(Path(out_dir) / f"field-{key}")
        if not trained_any:
            raise NotEnoughData(
                f"not enough labels to train yet ({len(examples)} annotated tasks); a head takes over from zero-shot "
                f"at {params.get('min_examples', 10)} labels with {params.get('min_per_class', 2)}+ in 2+ classes")
        # The guard: a version whose heads predict held-out labels worse than the served version's recipe or
        # zero-shot (same folds, see TextClassifier._guard) is kept as rejected and the served version stays.
        return TrainResult(n_examples=used, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))
