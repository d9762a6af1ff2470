"""Label Studio side of detection: `<Image>` with `<RectangleLabels>` (boxes) and/or `<PolygonLabels>` (instance
outlines from a YOLO segmentation model).

Per control tag: `model_path` (an allowed file of WEIGHTS_DIR, or a version this backend trained),
`model_score_threshold`, and per label `predicted_values` (the model classes it stands for). Only labels of the
config are predicted. The ML is the `detection` package's (`DetectorPool`, `run_plans`, `train_control`); this
module translates configs, tasks and annotations into its terms and its results into regions, with the Label
Studio side shared by region backends (`regions_predict`: serving; `regions_training`: annotations as `Sample`s;
`regions_models`: which model runs cover a control's labels).
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from detection.evaluate import PREDICT_CONF
from detection.guard import ControlFit, Guard, train_control, training_classes
from detection.model import ModelLoadError
from detection.pool import DetectorPool
from detection.predict import Plan
from detection.train import TrainingError as YoloTrainingError
from detection.train import TrainOptions
from detection.trained import TrainedControl, TrainedModel, TrainedModelError, load_trained, write_manifest
from detection.weights import DEFAULT_WEIGHTS, WeightsError

from ..base import Backend, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, NotEnoughData, TrainingError
from ..labels import Control, find_controls
from ..params import Number, OneOf
from ..regions_images import image_embeddings
from ..regions_models import (BATCH_PREDICT, IMGSZ, THRESHOLD, UNCERTAINTY, base_detector, check_controls,
                              control_plans, found_regions, label_plan, measures_for)
from ..regions_predict import predict_controls
from ..regions_training import detection_samples, sized_images
from ..regions_writers import RegionWriter, writer_for

log = logging.getLogger(__name__)

# what a request's params or a project's extra params may set (checked at /setup and at every /predict)
VAL_FRACTION = Number("val_fraction", 0.0, 0.9)
MIN_MAP_GAIN = Number("min_map_gain", -1.0, 1.0)
GUARD_METRIC = OneOf("guard_metric", ("map50", "map50_95"))
MIN_TRAIN_IMAGES = Number("min_train_images", 1, 1_000_000, integer=True)
PARAMS = (IMGSZ, BATCH_PREDICT, THRESHOLD, UNCERTAINTY, VAL_FRACTION, MIN_MAP_GAIN, GUARD_METRIC, MIN_TRAIN_IMAGES,
          Number("batch", 1, 256, integer=True), Number("epochs", 1, 10_000, integer=True))

DetectionModel = TrainedModel  # a served version


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("rectanglelabels", "polygonlabels"), ("image",), backend="detection"))


def _trained(model: Any, control: Control) -> TrainedControl | None:
    """The served version's fine-tuned model of `control`, if it has one."""
    return model.controls.get(control.name) if isinstance(model, DetectionModel) else None


class DetectionBackend(Backend):
    """Pre-annotates boxes and polygons with YOLO; fine-tunes on submitted regions, guarded by validation mAP."""

    name = "detection"
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights)

    # -- models -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        check_controls(self.pool, _controls(label_config))

    def measures(self, label_config: str | None = None) -> list[str]:
        if not label_config:
            return super().measures()
        return measures_for([writer_for(c) for c in _controls(label_config)])

    def load_model(self, version_dir: Path | None) -> DetectionModel:
        if version_dir is None:
            # the default box model now, so that missing weights show in /health before the first request
            base_detector(self.pool, None, "detect")
            return DetectionModel()
        try:
            return load_trained(Path(version_dir))
        except (TrainedModelError, ModelLoadError) as e:
            raise LabelloopError(str(e)) from None

    @staticmethod
    def writer(model: DetectionModel | None, control: Control, params: dict) -> RegionWriter:
        """The control's writer; its threshold: the tag's, else the project's params, else the one the served
        version learned from the project's annotations, else `DEFAULT_THRESHOLD`."""
        trained = _trained(model, control)
        return writer_for(control, params).learned(trained.threshold if trained is not None else None)

    def plans(self, model: DetectionModel | None, writer: RegionWriter) -> list[Plan]:
        """The model runs that cover a control's labels (`regions_models.control_plans`)."""
        trained = _trained(model, writer.control)
        return control_plans(self.pool, writer, trained.detector if trained is not None else None)

    # -- serving ------------------------------------------------------------------------------------------
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        writers = [self.writer(model, c, params) for c in _controls(label_config)]
        measure = UNCERTAINTY.measure(params, self.settings.uncertainty, writers, self.name)
        return predict_controls(tasks, [(w, self.plans(model, w)) for w in writers], media, self.settings,
                                BATCH_PREDICT.read(params, default=8), IMGSZ.read(params), measure,
                                lambda writer, dets, img: writer.predict_regions(found_regions(dets), img.width,
                                                                                 img.height))

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The pooled features of the image the first control labels, from the model that predicts it (the
        control's fine-tuned one once trained, else its base model)."""
        params = params or {}
        writer = writer_for(_controls(label_config)[0], params)
        trained = _trained(model, writer.control)
        detector = trained.detector if trained is not None else base_detector(self.pool, writer)
        return image_embeddings(detector, tasks, writer.control.value_key, media, self.settings,
                                BATCH_PREDICT.read(params, default=8), IMGSZ.read(params))

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        parent = parent if isinstance(parent, DetectionModel) else DetectionModel()
        try:
            opts = TrainOptions.from_params(params)
            guard = Guard(VAL_FRACTION.read(params, default=0.2), GUARD_METRIC.read(params, default="map50_95"),
                          MIN_MAP_GAIN.read(params, default=0.0))
        except ValueError as e:
            raise BadRequest(f"training parameters: {e}") from None
        min_images = MIN_TRAIN_IMAGES.read(params, default=4)
        writers = [writer_for(c, params) for c in _controls(label_config)]
        sizes = sized_images(examples, {w.control.value_key for w in writers}, media, self.settings.max_image_pixels)
        manifest: dict[str, dict] = {}
        metrics: dict[str, Any] = {"skipped_images": sum(s is None for s in sizes)}
        verdicts: list[str] = []
        for k, writer in enumerate(writers):
            name = writer.control.name
            fit = self._fit_control(writer, examples, sizes, parent, out_dir / f"control-{k}", opts, guard,
                                    params, min_images, metrics)
            if fit is None:
                continue
            manifest[name] = {"task": fit.task, "classes": fit.classes, "weights": f"control-{k}/weights.pt",
                              "threshold": fit.metrics.get("learned_threshold")}
            metrics[name] = fit.metrics
            if not fit.publish:
                verdicts.append(f"{name}: {fit.reason}")
        if not manifest:
            raise NotEnoughData("no annotated regions for any RectangleLabels/PolygonLabels of the config")
        first = metrics[next(iter(manifest))]
        metrics.update({k: first[k] for k in ("map50", "map50_95", "served_map50", "served_map50_95")})
        write_manifest(out_dir, manifest)
        n = sum(metrics[c]["train_images"] + metrics[c]["val_images"] for c in manifest)
        return TrainResult(n_examples=n, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))

    def _fit_control(self, writer: RegionWriter, examples, sizes, parent: DetectionModel, work: Path,
                     opts: TrainOptions, guard: Guard, params: dict, min_images: int,
                     metrics: dict) -> ControlFit | None:
        """Train and judge one control's model; None when nothing of it was annotated."""
        control, task = writer.control, writer.model_task
        base = base_detector(self.pool, writer)
        base_plan = label_plan(base, control, PREDICT_CONF)
        cls_of = training_classes(control.labels, base_plan.labels if base_plan else {})
        samples, unknown = detection_samples(control, examples, sizes, cls_of)
        if unknown:
            metrics.setdefault("unknown_labels", {}).update(unknown)
        if not any(s.objects for s in samples):
            return None
        if len(samples) < min_images:
            raise NotEnoughData(f"{control.name}: {len(samples)} annotated images, need {min_images} "
                                "(extra_params min_train_images)")
        used = {o.cls for s in samples for o in s.objects}
        class_names = [cls_of[lb] for lb in control.labels if cls_of[lb] in used]
        # the served model's runs, its labels turned into training classes for the comparison
        served = [Plan(p.detector, {c: cls_of[lb] for c, lb in p.labels.items()}, p.conf)
                  for p in self.plans(parent, writer)]
        try:
            fit = train_control(samples, class_names, self._start_weights(writer, parent, params), served, work,
                                task, opts, guard, self.settings.max_image_pixels, IMGSZ.read(params),
                                BATCH_PREDICT.read(params, default=8))
        except YoloTrainingError as e:
            raise TrainingError(f"{control.name}: {e}") from None
        fit.metrics["new_classes"] = [c for c in class_names if c not in base.names]
        return fit

    def _start_weights(self, writer: RegionWriter, parent: DetectionModel, params: dict) -> str:
        trained = parent.controls.get(writer.control.name)
        if trained is not None and trained.weights.suffix == ".pt":
            return str(trained.weights)
        spec = params.get("train_from") or writer.model_path
        if not spec or not str(spec).endswith(".pt"):
            spec = DEFAULT_WEIGHTS[writer.model_task]  # exported formats (.onnx, ...) cannot be trained: the .pt
        try:
            return self.pool.resolve(spec, writer.model_task)
        except WeightsError as e:
            raise BadRequest(str(e)) from None
