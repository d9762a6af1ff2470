"""Label Studio side of segmentation: `<Image>` with `<BrushLabels>` (masks) and/or `<PolygonLabels>`, prompted by
`<KeyPointLabels smart="true">` (positive and negative clicks) and `<RectangleLabels smart="true">` (boxes).

- With a context (the annotator clicked or dragged): one SAM mask for all prompts, with the prompt's label.
- Without one: instance masks of every object of the config's labels from YOLO-seg (the detection package), refined
  by SAM from the detector's boxes when SAM weights are present; and the image's SAM embedding is computed, so
  the annotator's first click is fast.

Settings: SAM_MODEL (vit_t = MobileSAM, default; vit_b, vit_l, vit_h), SAM_CHECKPOINT (a file name in WEIGHTS_DIR
or a path inside it or MODEL_DIR; default the official file of SAM_MODEL, downloaded the normal way),
SAM_CACHE_BYTES (in-process embedding cache, default 512 MiB; shared through Redis with REDIS_URL).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from detection.images import ImageError, load_image
from detection.pool import DetectorPool
from segmentation.automatic import box_masks
from segmentation.cache import EmbeddingCache
from segmentation.engines import DEFAULT_KIND, load_sam, model_id, resolve_checkpoint
from segmentation.errors import EngineError, NotEnoughMasks, PromptError
from segmentation.finetune import finetune_decoder, load_decoder, save_decoder
from segmentation.predictor import Segmenter

from ..base import Backend, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import LabelloopError, ModelUnavailable, NotEnoughData, TrainingError
from ..labels import Control, find_controls
from ..lazy import Lazy
from ..media import task_media
from ..params import Number
from ..regions_context import has_smart_tools, label_for, parse_context
from ..regions_images import image_embeddings, task_id
from ..regions_models import (BATCH_PREDICT, IMGSZ, THRESHOLD, UNCERTAINTY, Flag, base_detector, check_controls,
                             found_regions, label_plan)
from ..regions_predict import predict_controls
from ..regions_training import mask_pairs
from ..regions_writers import PixelRegion, RegionWriter, writer_for

log = logging.getLogger(__name__)

RETRY_SAM_S = 60.0  # missing SAM weights are looked for again at most this often


# what a request's params or a project's extra params may set (checked at /setup and at every /predict)
REFINE = Flag("refine")
WARM_TASKS = Number("warm_tasks", 0, 1000, integer=True)
EPOCHS = Number("epochs", 1, 10_000, integer=True)
LR = Number("lr", 1e-8, 1.0)
VAL_FRACTION = Number("val_fraction", 0.05, 0.9)
SEED = Number("seed", 0, 2**31 - 1, integer=True)
MAX_SECONDS = Number("max_seconds", 1, 7 * 86400)
PARAMS = (IMGSZ, BATCH_PREDICT, THRESHOLD, UNCERTAINTY, REFINE, WARM_TASKS, EPOCHS, LR, VAL_FRACTION, SEED, MAX_SECONDS)


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("brushlabels", "polygonlabels"), ("image",), backend="segmentation"))


@dataclass
class SegmentationModel:
    """A served version: the fine-tuned mask decoder (None for the base model)."""

    decoder: Any = None


class SegmentationBackend(Backend):
    """SAM masks from clicks and boxes; automatic instance masks; SAM mask-decoder fine-tuning."""

    name = "segmentation"
    MEASURES = ("least_confidence",)  # YOLO-seg reports no class probabilities: no margin, no entropy
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights)
        self.kind = settings.sam_model or DEFAULT_KIND
        self.cache = EmbeddingCache(settings.sam_cache_bytes, redis_url=settings.redis_url or None)
        self._segmenter = Lazy(self._load_segmenter, f"SAM ({self.kind}) is not available", (EngineError,),
                               RETRY_SAM_S)

    def segmenter(self) -> Segmenter:
        """The SAM segmenter, loaded once.

        Raises:
            ModelUnavailable: no SAM weights (the reason says where they were looked for).
        """
        return self._segmenter.get()

    def _load_segmenter(self) -> Segmenter:
        checkpoint = resolve_checkpoint(self.settings.sam_checkpoint or None, self.kind, self.settings.weights_dir,
                                        [self.settings.model_dir])
        sam = load_sam(self.kind, checkpoint)
        return Segmenter(sam, model_id(self.kind, checkpoint, sam), self.cache)

    def status(self) -> dict[str, Any]:
        sam = self._segmenter
        error = sam.error
        if not sam.loaded and not error:
            try:  # before the first click: are there weights to load? (looks only, downloads nothing)
                resolve_checkpoint(self.settings.sam_checkpoint or None, self.kind, self.settings.weights_dir,
                                   [self.settings.model_dir], download=False)
            except EngineError as e:
                error = str(e)
        state = "ready" if sam.loaded else "unavailable" if error else "not loaded"
        body: dict[str, Any] = {"sam": {"model": self.kind, "state": state}, "cache": self.cache.stats()}
        if error:
            body["sam"]["reason"] = error + " (interactive masks are off; automatic masks still work)"
        return body

    # -- config and versions ------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        check_controls(self.pool, _controls(label_config))

    def load_model(self, version_dir: Path | None) -> SegmentationModel:
        if version_dir is None:
            # YOLO-seg is needed for automatic masks; SAM is optional (its absence shows in /health)
            base_detector(self.pool, None, "segment")
            try:
                self.segmenter()
            except ModelUnavailable:
                pass  # logged once by the loader; automatic masks work without SAM
            return SegmentationModel()
        try:
            decoder = load_decoder(self.segmenter().sam, Path(version_dir), in_place=False)
        except EngineError as e:
            raise LabelloopError(str(e)) from e
        return SegmentationModel(decoder.eval())

    # -- serving ------------------------------------------------------------------------------------------
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        model = model if isinstance(model, SegmentationModel) else SegmentationModel()
        writers = [writer_for(c, params) for c in _controls(label_config)]
        if context and context.get("result"):
            return [self._interactive(model, task, writers, context, media) for task in tasks]
        return self._automatic(tasks, writers, label_config, params, media)

    def _load(self, task: dict, key: str, media) -> np.ndarray:
        return load_image(task_media(task, key, media, "an image"), self.settings.max_image_pixels)

    def _interactive(self, model: SegmentationModel, task: dict, writers: list[RegionWriter], context: dict,
                     media) -> TaskPrediction:
        items = [i for i in context.get("result") or [] if isinstance(i, dict)]
        target = next((i.get("to_name") for i in items if i.get("to_name")), None)
        # the object the prompts were drawn on; a brush there before an outline
        writer = next((w for w in writers if w.control.to_name == target and w.tag == "brushlabels"), None) or \
            next((w for w in writers if w.control.to_name == target), writers[0])
        try:
            image = self._load(task, writer.control.value_key, media)
            height, width = image.shape[:2]
            prompt = parse_context(context, width, height)
            if prompt is None:
                return TaskPrediction(result=[], score=None)
            if prompt.size_mismatch:
                log.info("task %s: prompts drawn on another size of the image; placed by percent", task_id(task))
            found = self.segmenter().segment(image, prompt.points, prompt.point_labels, prompt.box,
                                             decoder=model.decoder)
        except (ImageError, PromptError, LabelloopError) as e:
            return TaskPrediction(error=f"task {task_id(task)}: {e}")
        region = PixelRegion(label_for(writer.control.labels, prompt.label), found.score, mask=found.mask)
        return TaskPrediction(result=writer.predict_regions([region], width, height), score=round(found.score, 4))

    def _automatic(self, tasks: list[dict], writers: list[RegionWriter], label_config: str, params: dict,
                   media) -> list[TaskPrediction]:
        refine = REFINE.read(params, default=True)
        measure = UNCERTAINTY.measure(params, self.settings.uncertainty, writers, self.name)
        segmenter = None
        if refine or has_smart_tools(label_config):
            try:
                segmenter = self.segmenter()
            except ModelUnavailable:
                segmenter = None  # automatic masks come from YOLO-seg alone
        warm = has_smart_tools(label_config) and len(tasks) <= WARM_TASKS.read(params, default=1)
        plans = [(w, [p] if (p := label_plan(base_detector(self.pool, w), w.control, w.threshold)) else [])
                 for w in writers]

        def masks(writer: RegionWriter, dets: list, img) -> list[dict]:
            return self._image_masks(writer, dets, img, segmenter, refine, warm)

        return predict_controls(tasks, plans, media, self.settings, BATCH_PREDICT.read(params, default=8),
                                IMGSZ.read(params), measure, masks, what="masks")

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The pooled YOLO-seg features of the image the first control labels (the model of automatic masks)."""
        params = params or {}
        writer = writer_for(_controls(label_config)[0], params)
        return image_embeddings(base_detector(self.pool, writer), tasks, writer.control.value_key, media,
                                self.settings, BATCH_PREDICT.read(params, default=8), IMGSZ.read(params))

    @staticmethod
    def _image_masks(writer: RegionWriter, dets: list, img, segmenter: Segmenter | None, refine: bool,
                     warm: bool) -> list[dict]:
        """The regions of one image's detections, their boxes refined into masks by SAM (`box_masks`)."""
        found = found_regions(dets)
        boxes = np.array([r.xyxy for r in found], dtype=np.float32).reshape(-1, 4)
        for region, refined in zip(found, box_masks(segmenter, img.array, boxes, refine, warm) or []):
            region.mask = refined.mask
        return writer.predict_regions(found, img.width, img.height)

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        parent = parent if isinstance(parent, SegmentationModel) else SegmentationModel()
        try:
            base = self.segmenter()
        except ModelUnavailable as e:
            raise TrainingError(f"mask-decoder training needs SAM weights: {e}") from None
        pairs, skipped = mask_pairs(examples, _controls(label_config), media, self.settings.max_image_pixels)
        if len(pairs) < 2:
            raise NotEnoughData(f"{len(pairs)} submitted masks; training needs at least 2")
        try:
            # from the served decoder (the parent's, else the base model's); apply=False: the served model is kept
            report = finetune_decoder(base, pairs, val_fraction=VAL_FRACTION.read(params, default=0.25),
                                      epochs=EPOCHS.read(params, default=10), lr=LR.read(params, default=1e-4),
                                      seed=SEED.read(params, default=0), apply=False,
                                      max_seconds=MAX_SECONDS.read(params), start_decoder=parent.decoder)
        except NotEnoughMasks as e:
            raise NotEnoughData(str(e)) from None
        metrics = {**report.metrics, **skipped, "masks": len(pairs)}
        save_decoder(report.state_dict, out_dir, {"sam": self.kind, "model_id": base.model_id, "metrics": metrics})
        return TrainResult(n_examples=len(pairs), metrics=metrics, publish=report.improved, reason=report.reason)
