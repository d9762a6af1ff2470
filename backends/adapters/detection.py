"""Label Studio side of detection: `<Image>` with `<RectangleLabels>` (boxes) and/or `<PolygonLabels>` (instance
outlines from a YOLO segmentation model).

Per control tag: `model_path` (an allowed file of WEIGHTS_DIR, or a version this backend trained),
`model_score_threshold`, and per label `predicted_values` (the model classes it stands for). Only labels of the
config are predicted. The ML is the `detection` package's (`DetectorPool`, `run_plans`, `train_control`); this
module translates configs, tasks and annotations into its terms and its results into regions, with the Label
Studio side shared by region backends (`regions_predict`: serving; `regions_finetune`: training and judging each
control's model on its annotations; `regions_models`: which model runs cover a control's labels).
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from detection.engines import Serving, prepare_export
from detection.guard import Guard
from detection.model import ModelLoadError
from detection.pool import DetectorPool
from detection.predict import Plan
from detection.trained import TrainedControl, TrainedModel, TrainedModelError, load_trained, write_manifest

from ..base import Adapter, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, NotEnoughData
from ..labels import Control, find_controls
from ..params import Number, OneOf
from ..regions_finetune import fit_controls
from ..regions_images import image_embeddings
from ..regions_models import (BATCH_PREDICT, IMGSZ, THRESHOLD, UNCERTAINTY, base_detector, check_controls,
                              control_plans, found_regions, measures_for)
from ..regions_predict import predict_controls
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


class DetectionAdapter(Adapter):
    """Pre-annotates boxes and polygons with YOLO; fine-tunes on submitted regions, guarded by validation mAP."""

    name = "detection"
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        # a box model's .pt is served by its OpenVINO export on CPU (DETECTION_ENGINE), cached by the weights' digest
        # and the library versions, so one folder serves every MODEL_DIR: by default the user's cache, which the
        # training worker shares on one machine (the Docker image sets a folder of the shared /models volume)
        self.serving = Serving(settings.detection_engine, settings.detection_export_dir, settings.detection_precision)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights,
                                 serving=self.serving)

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
            return load_trained(Path(version_dir), self.serving)
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
        """One version: per control with annotated regions its YOLO model fine-tuned and judged against the served
        one (`regions_finetune.fit_controls`); it publishes when every trained control beats what is served."""
        params = params or {}
        parent = parent if isinstance(parent, DetectionModel) else DetectionModel()
        try:
            guard = Guard(VAL_FRACTION.read(params, default=0.2), GUARD_METRIC.read(params, default="map50_95"),
                          MIN_MAP_GAIN.read(params, default=0.0))
        except ValueError as e:
            raise BadRequest(f"training parameters: {e}") from None
        writers = [writer_for(c, params) for c in _controls(label_config)]
        yolo = fit_controls(self.pool, writers, examples, parent, out_dir, params, media,
                            self.settings.max_image_pixels, guard, MIN_TRAIN_IMAGES.read(params, default=4))
        if not yolo.trained:
            raise NotEnoughData("no annotated regions for any RectangleLabels/PolygonLabels of the config")
        metrics, first = yolo.metrics, yolo.metrics[yolo.trained[0]]
        metrics.update({k: first[k] for k in ("map50", "map50_95", "served_map50", "served_map50_95")})
        write_manifest(out_dir, yolo.manifest)
        if not yolo.verdicts:  # to be published: its exports made here, not in a server's load
            for entry in yolo.manifest.values():
                prepare_export(Path(out_dir) / entry["weights"], entry["task"], self.serving)
        return TrainResult(n_examples=yolo.images, metrics=metrics, publish=not yolo.verdicts,
                           reason="; ".join(yolo.verdicts))
