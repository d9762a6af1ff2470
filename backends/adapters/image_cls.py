"""Label Studio side of image classification: `<Image>` with `<Choices>` (single or multiple) or `<Taxonomy>`.

Before labels: a YOLO detector's classes found in the image, mapped onto the config's classes (`predicted_values`,
else the name; a Taxonomy path by its leaf), scored by their best box; nothing for the other classes. After
`min_examples` labels: `image_cls.ImageClassifier`, a head on pooled YOLO features over those base scores, published
only when held-out folds say it is not worse than the served version or the base predictions.

Every result item carries the k best classes (`top_k` extra param, default 5) in `value.top_k` as
[{"label", "score"}]: Label Studio keeps extra keys of a value (its prediction check reads only `choices`) and its
API returns them. The ML is the `image_cls` package's; this module translates configs, tasks and annotations.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from detection.images import ImageError, load_image
from detection.model import ModelLoadError
from detection.pool import DetectorPool
from detection.weights import WeightsError
from image_cls import NotEnoughLabels
from image_cls.base import plan_scores
from image_cls.classifier import ImageClassifier, fit_images
from image_cls.features import DEFAULT_IMGSZ, Embedder
from image_cls.predict import predict_one, probabilities
from image_cls.version import ImageClsModel
from selection import get_measure as get_strategy
from selection import names

from ..base import Adapter, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..choices import ChoicesWriter, as_classes, check_classes, known_answer, task_score
from ..exceptions import LabelloopError, ModelUnavailable, NotEnoughData, UnsupportedConfig
from ..labels import Control, find_controls
from ..params import Number, OneOf
from ..regions_images import image_embeddings, image_files, stream, task_id
from ..regions_models import BATCH_PREDICT, IMGSZ, THRESHOLD, label_plan

log = logging.getLogger(__name__)

TOP_K = Number("top_k", 1, 100, integer=True)
MULTI_THRESHOLD = Number("multi_threshold", 0, 1)
UNCERTAINTY = OneOf("uncertainty", tuple(names()))
MIN_EXAMPLES = Number("min_examples", 2, 1_000_000, integer=True)
MIN_PER_CLASS = Number("min_per_class", 2, 1_000_000, integer=True)
GUARD_TOLERANCE = Number("guard_tolerance", 0, 1)
PARAMS = (TOP_K, MULTI_THRESHOLD, UNCERTAINTY, THRESHOLD, IMGSZ, BATCH_PREDICT, MIN_EXAMPLES, MIN_PER_CLASS,
          GUARD_TOLERANCE)
BASE_CONF = 0.1  # boxes below this confidence say nothing of the image (default model_score_threshold)


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    found = find_controls(label_config, ("choices", "taxonomy"), ("image",), backend="image_cls")
    return tuple(as_classes(c, label_config) for c in found)


class ImageClassificationAdapter(Adapter):
    """Pre-annotates Choices/Taxonomy on images with their top-k classes: a detector's classes, then a trained head."""

    name = "image_cls"
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights)

    # -- models -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        for c in _controls(label_config):
            check_classes(c)
            self._weights(c)

    def _weights(self, control: Control) -> str:
        try:
            return self.pool.resolve(control.attrs.get("model_path") or None, "detect")
        except WeightsError as e:
            raise UnsupportedConfig(str(e)) from None

    def _detector(self, control: Control):
        try:
            return self.pool.get(self._weights(control), "detect")
        except ModelLoadError as e:
            raise ModelUnavailable(str(e)) from None

    def load_model(self, version_dir: Path | None) -> ImageClsModel:
        if version_dir is None:
            self.pool.get(self.pool.resolve(None, "detect"), "detect")  # missing weights show in /health now
            return ImageClsModel()
        try:
            return ImageClsModel.load(version_dir)
        except (OSError, ValueError, KeyError) as e:
            raise LabelloopError(f"{version_dir} holds no image classifier: {e}") from None

    def classifier(self, model: Any, control: Control) -> ImageClassifier:
        """The trained classifier of a control when its classes are still the config's, else base predictions."""
        version = model if isinstance(model, ImageClsModel) else ImageClsModel()
        return version.classifier(control.name, control.labels, control.multi)

    # -- the two model runs -------------------------------------------------------------------------------
    def scores(self, control: Control, arrays: list, params: dict) -> list:
        """Per image the base scores over the control's classes, or the Exception its prediction raised."""
        plan = label_plan(self._detector(control), control, THRESHOLD.read(params, default=BASE_CONF))
        return plan_scores(plan, control.labels, arrays, IMGSZ.read(params), BATCH_PREDICT.read(params, default=8))

    def features(self, control: Control, arrays: list, params: dict) -> list:
        """Per image its feature vector, or the Exception that image raised (a failed batch is retried singly)."""
        return Embedder(self._detector(control)).features_or_errors(arrays, BATCH_PREDICT.read(params, default=8),
                                                                    IMGSZ.read(params))

    # -- serving ------------------------------------------------------------------------------------------
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        controls = _controls(label_config)
        k, threshold = TOP_K.read(params, default=5), MULTI_THRESHOLD.read(params, default=0.5)
        strategy = get_strategy(UNCERTAINTY.read(params) or self.settings.uncertainty)
        answers = [TaskPrediction() for _ in tasks]
        confidences: list[list[float]] = [[] for _ in tasks]
        keys = {c.value_key for c in controls}
        for idx, images, errors in stream(tasks, keys, media, self.settings, BATCH_PREDICT.read(params, default=8)):
            for control in controls:
                clf = self.classifier(model, control)
                ok = [j for j, e in enumerate(errors) if e is None]
                rows = self._rows(clf, control, [images[j][control.value_key].array for j in ok], params)
                for j, row in zip(ok, rows):
                    if isinstance(row, Exception):
                        errors[j] = f"task {task_id(tasks[idx[j]])}: prediction failed ({type(row).__name__}: {row})"
                        continue
                    found = predict_one(control.labels, control.multi, *row, k, threshold, strategy)
                    if found.chosen:
                        answers[idx[j]].result.append(
                            ChoicesWriter(control).item(found.chosen, found.confidence, found.ranked))
                    confidences[idx[j]].append(found.confidence)
            for j, err in enumerate(errors):
                answers[idx[j]].error = err
        for answer, conf in zip(answers, confidences):
            if answer.error is None:
                answer.score = task_score(conf)
        return answers

    def _rows(self, clf: ImageClassifier, control: Control, arrays: list, params: dict) -> list:
        """Per image (probabilities, allowed classes), or its Exception."""
        if not arrays:
            return []
        if clf.imgsz:  # a head reads base scores and features as they were at its training size
            params = {**params, "imgsz": clf.imgsz}
        scores = self.scores(control, arrays, params)
        feats = self.features(control, arrays, params) if clf.head is not None else [None] * len(arrays)
        return probabilities(clf, scores, feats)

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The pooled YOLO features of the image the first control labels."""
        params = params or {}
        control = _controls(label_config)[0]
        return image_embeddings(self._detector(control), tasks, control.value_key, media, self.settings,
                                BATCH_PREDICT.read(params, default=8), IMGSZ.read(params) or DEFAULT_IMGSZ)

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        version = ImageClsModel()
        metrics: dict[str, Any] = {}
        verdicts: list[str] = []
        used, why = 0, []
        for control in _controls(label_config):
            arrays, targets, ids, unknown = self._labeled(control, examples, media)
            if unknown:
                metrics.setdefault("skipped_unknown_labels", {}).update(unknown)
            if not arrays:
                continue
            try:
                report = fit_images(control.labels, control.multi, self.scores(control, arrays, params),
                                    self.features(control, arrays, params), targets, ids,
                                    self.classifier(parent, control), MIN_EXAMPLES.read(params, default=10),
                                    MIN_PER_CLASS.read(params, default=2), GUARD_TOLERANCE.read(params, default=0.0))
            except NotEnoughLabels as e:
                why.append(f"{control.name}: {e}")
                continue
            report.classifier.imgsz = IMGSZ.read(params) or DEFAULT_IMGSZ
            version.classifiers[control.name] = report.classifier
            metrics[control.name] = report.metrics
            used = max(used, len(ids))
            if not report.publish:
                verdicts.append(f"{control.name}: {report.reason}")
        if not version.classifiers:
            raise NotEnoughData("; ".join(why) or "no annotated images for any Choices/Taxonomy of the config")
        version.save(out_dir)
        first = metrics[next(iter(version.classifiers))]
        metrics.update({k: first[k] for k in ("accuracy", "base_accuracy") if k in first})
        return TrainResult(n_examples=used, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))

    def _labeled(self, control: Control, examples: list[LabeledTask], media) -> tuple[list, list, list, dict]:
        """The decoded images, chosen classes and ids of the examples that label `control` with known classes,
        and the count of labels the config no longer has."""
        arrays, targets, ids, unknown = [], [], [], {}
        wanted = []
        for ex in examples:
            chosen = known_answer(control, ex.result, control.labels, unknown)
            if chosen is not None:
                wanted.append((ex, chosen if control.multi else chosen[:1]))
        files, errors = image_files([{"id": ex.task_id, "data": ex.data} for ex, _ in wanted], {control.value_key},
                                    media)
        for (ex, chosen), found, err in zip(wanted, files, errors):
            try:
                if err is not None:
                    raise LabelloopError(err)
                arrays.append(load_image(found[control.value_key], self.settings.max_image_pixels))
            except (ImageError, OSError, LabelloopError) as e:
                log.warning("training example skipped: %s", e)
                continue
            targets.append(chosen)
            ids.append(str(ex.task_id))
        return arrays, targets, ids, unknown
