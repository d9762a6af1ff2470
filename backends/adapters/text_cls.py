"""Label Studio side of text classification: `<Text>` with `<Choices>` (single or multiple) or `<Taxonomy>`."""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from selection import get_measure as get_strategy  # the measure behind a strategy's per-task score
from selection import names
from text_cls import DEFAULT_PARAMS, ControlSpec
from text_cls.controls import choose
from text_cls.encoder import DEFAULT_MODEL, Encoder, get_encoder
from text_cls.params import merge_params
from text_cls.version import TextModel, train_field
from text_cls.zero_shot_cache import ZeroShotCache

from ..base import Adapter, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..choices import PATH_SEP, ChoicesWriter, as_classes, check_classes, known_answer, task_score, taxonomy_paths
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData
from ..labels import Control, find_controls, task_text
from ..params import Flag, Number, OneOf, allowed_weights_folder

log = logging.getLogger(__name__)

MULTI_THRESHOLD = Number("multi_threshold", 0, 1)
UNCERTAINTY = OneOf("uncertainty", tuple(names()))
# The classifier's numeric options and switches (text_cls.DEFAULT_PARAMS), so a bad one is a 400 at /setup, not a failed
# training run later. C and prior_weight also take "auto" and are checked where the classifier reads them.
NUMBERS = (Number("min_examples", 1, 100_000, integer=True), Number("min_per_class", 1, 10_000, integer=True),
           Number("max_iter", 10, 100_000, integer=True), Number("cv_folds", 2, 20, integer=True),
           Number("seed", 0, 2**31 - 1, integer=True), Number("finetune_epochs", 1, 100, integer=True),
           Number("finetune_min_examples", 1, 100_000, integer=True),
           Number("finetune_max_examples", 10, 10_000_000, integer=True),
           Number("finetune_lr", 1e-8, 1.0), Number("finetune_batch_size", 1, 1024, integer=True),
           Number("zero_shot_temperature", 1e-4, 100.0), Number("multi_margin", -1.0, 1.0),
           Number("multi_temperature", 1e-4, 100.0), Number("guard_tolerance", 0.0, 1.0),
           Number("self_training_multiple", 0, 1000), Number("self_training_max", 0, 1_000_000, integer=True),
           Number("self_training_pool", 0, 1_000_000, integer=True),
           Flag("finetune", auto=True), Flag("prior"), Flag("centroids"), Flag("self_training"))
# Names `params.model` may give the base encoder by; other models only from WEIGHTS_DIR through ALLOWED_WEIGHTS.
BASE_MODEL_NAMES = (DEFAULT_MODEL, DEFAULT_MODEL.rsplit("/", 1)[-1])
MAX_ZERO_SHOT = 64  # zero-shot classifiers kept (one per model, control and zero-shot params)


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("choices", "taxonomy"), ("text", "hypertext"), backend="text_cls"))


def _spec(control: Control, label_config: str) -> ControlSpec:
    """The classifier's view of a control: a Taxonomy's classes are its leaf paths, each described by its leaf."""
    if control.tag == "taxonomy":
        paths = taxonomy_paths(label_config, control.name)
        labels = [PATH_SEP.join(p) for p in paths]
        return ControlSpec(name=control.name, labels=labels, multi=False,
                           descriptions={PATH_SEP.join(p): [p[-1]] for p in paths})
    return ControlSpec(name=control.name, labels=list(control.labels), multi=control.multi,
                       descriptions={lb: control.synonyms(lb) for lb in control.labels if control.synonyms(lb)})


class TextClassificationAdapter(Adapter):
    """Pre-annotates Choices/Taxonomy on text: zero-shot until enough labels exist, then a trained head."""

    name = "text_cls"
    PARAMS = (MULTI_THRESHOLD, UNCERTAINTY, *NUMBERS)  # checked at /setup and /predict (backends/params.py)

    def __init__(self, settings):
        super().__init__(settings)
        self._zero_shot = ZeroShotCache()

    # -- config -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        for c in _controls(label_config):
            check_classes(as_classes(c, label_config))

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
            return get_encoder(name, self.settings.weights_dir, engine=self.settings.text_encoder,
                               onnx_dir=self.settings.text_onnx_dir or self.settings.model_dir / "text_cls" / "onnx",
                               threads=self.settings.cpu_threads)
        except (OSError, ValueError, EnvironmentError) as e:
            raise ModelUnavailable(f"the text model {name!r} could not be loaded: {e}") from None

    # -- serving ------------------------------------------------------------------------------------------
    def load_model(self, version_dir: Path | None) -> TextModel | None:
        if version_dir is None:
            self.encoder()  # load the transformer now, not on the first request
            return None
        model = TextModel.load(version_dir, self.encoder())
        if model is None:
            raise LabelloopError(f"{version_dir} holds no text classifier")
        return model

    def _classifier_for(self, model: TextModel | None, control: Control, spec: ControlSpec, params: dict):
        """The version's classifier when it has a head for the control as configured now, else zero-shot."""
        trained = model.trained_for(control.value_key, spec) if model else None
        if trained is not None:
            return trained
        try:
            return self._zero_shot.get(self.encoder(params), spec, params, MAX_ZERO_SHOT)
        except ValueError as e:
            raise BadRequest(f"params: {e}") from None

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
            texts, rows = self._texts(tasks, control, media, answers)
            if not texts:
                continue
            # A single-choice head serves its product with its labels' centroid classifier (text_cls.centroids):
            # the choice, its probability and the task score all come from that one distribution.
            probs = self._classifier_for(model, control, spec, params).predict_proba(texts)[spec.name]
            conf = strategy(probs, multi_label=spec.multi)
            writer = ChoicesWriter(control)
            for row, p, c in zip(rows, probs, conf):
                answers[row].result.append(writer.item(choose(spec, p, threshold), c))
                confidences[row].append(float(c))
        for answer, conf in zip(answers, confidences):
            if answer.error is None:
                answer.score = task_score(conf)
        return answers

    @staticmethod
    def _texts(tasks: list[dict], control: Control, media: Any, out: list) -> tuple[list[str], list[int]]:
        """The texts `control` labels in the tasks whose `out` entry has no error yet, and their rows; a task whose
        text cannot be read gets the error in `out`."""
        texts, rows = [], []
        for i, task in enumerate(tasks):
            if out[i].error is not None:
                continue
            try:
                texts.append(task_text(task, control, media))
                rows.append(i)
            except LabelloopError as e:
                out[i].error = str(e)
        return texts, rows

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The sentence embedding of the text the first control labels (a fine-tuned encoder's when trained)."""
        control = _controls(label_config)[0]
        trained = model.classifiers.get(control.value_key) if model else None
        encoder = trained.encoder if trained is not None else self.encoder(params)
        out = [TaskEmbedding() for _ in tasks]
        texts, rows = self._texts(tasks, control, media, out)
        for row, vector in zip(rows, encoder.encode(texts) if texts else []):
            out[row].vector = [round(float(x), 6) for x in vector]
        return out

    # -- training -----------------------------------------------------------------------------------------
    def open_tasks_wanted(self, params: dict | None = None) -> int:
        """The open tasks a fine-tune self-trains on (text_cls.self_training): self_training_pool, none when
        fine-tuning or self-training is off (bad params: none here, fit names them)."""
        try:
            p = merge_params(DEFAULT_PARAMS, params)
        except ValueError:
            return 0
        return int(p["self_training_pool"]) if p["finetune"] is not False and p["self_training"] else 0

    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None, open_tasks: list[dict] | None = None) -> TrainResult:
        params = params or {}
        by_field: dict[str, list[Control]] = {}
        for c in _controls(label_config):
            by_field.setdefault(c.value_key, []).append(c)
        metrics: dict[str, Any] = {}
        trained_any, used = False, 0
        verdicts: list[str] = []  # why the new version is worse than the served one or zero-shot
        for key, group in by_field.items():
            specs = [_spec(c, label_config) for c in group]
            texts, targets, unknown = self._answers(examples, group, specs, media)
            if not texts:
                continue
            served = parent.classifiers.get(key) if isinstance(parent, TextModel) else None
            unlabeled = _open_texts(open_tasks or [], group[0])
            try:
                fitted = train_field(self.encoder(params), specs, texts, targets, params, served, out_dir, key,
                                     unlabeled)
            except ValueError as e:
                raise BadRequest(f"training parameters: {e}") from None
            verdicts += fitted.verdicts
            if open_tasks is not None:
                fitted.metrics["open_texts"] = len(unlabeled)  # what a fine-tune could self-train on
            if unknown:
                fitted.metrics["skipped_unknown_labels"] = unknown
                log.warning("annotations with labels the config no longer has were skipped: %s", unknown)
            metrics[key] = fitted.metrics
            used = max(used, len(texts))
            trained_any = trained_any or fitted.trained
        if not trained_any:
            raise NotEnoughData(
                f"not enough labels to train yet ({len(examples)} annotated tasks); a head takes over from zero-shot "
                f"at {params.get('min_examples', 10)} labels with {params.get('min_per_class', 2)}+ in 2+ classes")
        # The guard: a version whose heads predict held-out labels worse than the served version's recipe or
        # zero-shot (same folds, see text_cls.guard) is kept as rejected and the served version stays.
        return TrainResult(n_examples=used, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))

    @staticmethod
    def _answers(examples: list[LabeledTask], group: list[Control], specs: list[ControlSpec], media: Any
                 ) -> tuple[list[str], dict[str, list[list[str] | None]], dict[str, int]]:
        """The texts of a field's annotated examples, per control their answers (None: none), and the count of
        labels the config no longer has."""
        texts: list[str] = []
        targets: dict[str, list[list[str] | None]] = {s.name: [] for s in specs}
        unknown: dict[str, int] = {}
        for ex in examples:
            try:
                text = task_text({"id": ex.task_id, "data": ex.data}, group[0], media)
            except LabelloopError as e:
                log.warning("training example skipped: %s", e)
                continue
            row = {spec.name: known_answer(control, ex.result, spec.labels, unknown)
                   for control, spec in zip(group, specs)}
            if all(v is None for v in row.values()):
                continue
            texts.append(text)
            for name, v in row.items():
                targets[name].append(v)
        return texts, targets, unknown


def _open_texts(tasks: list[dict], control: Control) -> list[str]:
    """The texts of the open tasks that hold them inline; linked texts (valueType="url") are not fetched for
    self-training: thousands of downloads for a training run."""
    out = []
    for task in tasks:
        try:
            out.append(task_text(task, control, None))
        except LabelloopError:
            continue
    return out
