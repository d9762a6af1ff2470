"""Label Studio side of segmentation: `<Image>` with `<BrushLabels>` (masks) and/or `<PolygonLabels>`, prompted by
`<KeyPointLabels smart="true">` (positive and negative clicks) and `<RectangleLabels smart="true">` (boxes).

- With a context (the annotator clicked or dragged): one SAM mask for all prompts, with the prompt's label.
- Without one: instance masks of every object of the config's labels from YOLO-seg (the served version's for the
  labels it learned, the base model for the rest), refined by SAM (and the version's decoder) from their boxes when
  SAM weights are present; and the image's SAM embedding is computed, so the annotator's first click is fast.
- Training: one version of YOLO-seg fine-tuned per control on the submitted masks and polygons (`regions_finetune`,
  guarded by validation mask mAP) and, with SAM weights, SAM's mask decoder (`mask_decoder`); it publishes when
  every part that trained beats what is served.

SAM's settings (SAM_MODEL, SAM_CHECKPOINT, SAM_CACHE_BYTES) are read by `backends/sam.py`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from detection.guard import Guard
from detection.images import ImageError, load_image
from detection.model import ModelLoadError
from detection.pool import DetectorPool
from detection.trained import MANIFEST, TrainedControl, TrainedModel, TrainedModelError, load_trained, write_manifest
from segmentation.automatic import box_masks
from segmentation.cache import Entry
from segmentation.errors import EngineError, PromptError
from segmentation.finetune import DECODER_FILE, load_decoder
from segmentation.predictor import Segmenter
from segmentation.prompts import Prompt

from ..base import Adapter, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData
from ..labels import Control, find_controls
from ..mask_decoder import fit_decoder
from ..media import task_media
from ..media_identity import content_key, media_key
from ..params import Number, OneOf
from ..regions_context import has_smart_tools, label_for, parse_context
from ..regions_finetune import fit_controls
from ..regions_images import image_embeddings, task_id
from ..regions_models import (BATCH_PREDICT, IMGSZ, THRESHOLD, UNCERTAINTY, Flag, base_detector, check_controls,
                             control_plans, found_regions)
from ..regions_predict import predict_controls
from ..regions_writers import PixelRegion, RegionWriter, writer_for
from ..sam import SamService

log = logging.getLogger(__name__)

# what a request's params or a project's extra params may set (checked at /setup and at every /predict)
REFINE = Flag("refine")
WARM_TASKS = Number("warm_tasks", 0, 1000, integer=True)
EPOCHS = Number("epochs", 1, 10_000, integer=True)
LR = Number("lr", 1e-8, 1.0)
VAL_FRACTION = Number("val_fraction", 0.05, 0.9)
SEED = Number("seed", 0, 2**31 - 1, integer=True)
MAX_SECONDS = Number("max_seconds", 1, 7 * 86400)
MIN_MAP_GAIN = Number("min_map_gain", -1.0, 1.0)
GUARD_METRIC = OneOf("guard_metric", ("mask_map50", "mask_map50_95"))
MIN_TRAIN_IMAGES = Number("min_train_images", 1, 1_000_000, integer=True)
PARAMS = (IMGSZ, BATCH_PREDICT, THRESHOLD, UNCERTAINTY, REFINE, WARM_TASKS, EPOCHS, LR, VAL_FRACTION, SEED, MAX_SECONDS,
          MIN_MAP_GAIN, GUARD_METRIC, MIN_TRAIN_IMAGES, Number("batch", 1, 256, integer=True))
# the YOLO part's summary copied to the top of a version's metrics (from its first trained control)
SUMMARY = ("mask_map50", "mask_map50_95", "served_mask_map50", "served_mask_map50_95", "map50", "map50_95")


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("brushlabels", "polygonlabels"), ("image",), backend="segmentation"))


@dataclass
class SegmentationModel:
    """A served version: the fine-tuned mask decoder (None: the base one) and the fine-tuned YOLO-seg per control."""

    decoder: Any = None
    yolo: TrainedModel = field(default_factory=TrainedModel)
    folder: Path | None = None  # the version's folder (None: the base model)

    def trained(self, control: Control) -> TrainedControl | None:
        return self.yolo.controls.get(control.name)


class SegmentationAdapter(Adapter):
    """SAM masks from clicks and boxes; automatic instance masks; SAM mask-decoder fine-tuning."""

    name = "segmentation"
    MEASURES = ("least_confidence",)  # YOLO-seg reports no class probabilities: no margin, no entropy
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights)
        self.sam = SamService(settings)
        self.kind, self.cache = self.sam.kind, self.sam.cache

    def segmenter(self) -> Segmenter:
        """The SAM segmenter, loaded once (`SamService.get`).

        Raises:
            ModelUnavailable: no SAM weights (the reason says where they were looked for).
        """
        return self.sam.get()

    def status(self) -> dict[str, Any]:
        return self.sam.status()

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
        folder = Path(version_dir)
        model = SegmentationModel(folder=folder)
        try:
            if (folder / MANIFEST).is_file():
                model.yolo = load_trained(folder)
            if (folder / DECODER_FILE).is_file():
                model.decoder = load_decoder(self.segmenter().sam, folder, in_place=False).eval()
        except (EngineError, TrainedModelError, ModelLoadError) as e:
            raise LabelloopError(str(e)) from e
        return model

    def writer(self, model: SegmentationModel, control: Control, params: dict) -> RegionWriter:
        """The control's writer, with the score threshold the served version learned unless one is set."""
        trained = model.trained(control)
        return writer_for(control, params).learned(trained.threshold if trained is not None else None)

    # -- serving ------------------------------------------------------------------------------------------
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        model = model if isinstance(model, SegmentationModel) else SegmentationModel()
        writers = [self.writer(model, c, params) for c in _controls(label_config)]
        if context and context.get("result"):
            return [self._interactive(model, task, writers, context, media) for task in tasks]
        return self._automatic(model, tasks, writers, label_config, params, media)

    def _embedded(self, task: dict, key: str, media, context: dict) -> tuple[Prompt | None, Entry | None]:
        """The prompts in pixels and the image's embedding. The embedding is looked up by the task's media
        (`media_key`: a stat, no decode, no pixel hash); only when it is not cached is the image decoded and
        embedded (once), under that key, so the next click finds it.

        Returns:
            (None, None) when the context holds no prompt.
        """
        path = task_media(task, key, media, "an image")
        try:
            image_key = media_key(path, media)
        except OSError as e:
            raise ImageError(f"cannot read the image ({e.strerror or type(e).__name__})") from None
        segmenter = self.segmenter()
        # embedded while the file was keyed by its content (changed moments before): found by its file hash
        entry = segmenter.cached(image_key, alias=partial(content_key, path))
        image = None
        if entry is None:
            image = load_image(path, self.settings.max_image_pixels)
        height, width = entry.original_size if entry is not None else image.shape[:2]
        prompt = parse_context(context, width, height)
        if prompt is not None and entry is None:
            entry = segmenter.embed(image, image_key, count=False)  # the miss was counted by `cached`
        return prompt, entry

    def _interactive(self, model: SegmentationModel, task: dict, writers: list[RegionWriter], context: dict,
                     media) -> TaskPrediction:
        items = [i for i in context.get("result") or [] if isinstance(i, dict)]
        target = next((i.get("to_name") for i in items if i.get("to_name")), None)
        # the object the prompts were drawn on; a brush there before an outline
        writer = next((w for w in writers if w.control.to_name == target and w.tag == "brushlabels"), None) or \
            next((w for w in writers if w.control.to_name == target), writers[0])
        try:
            prompt, entry = self._embedded(task, writer.control.value_key, media, context)
            if prompt is None:
                return TaskPrediction(result=[], score=None)
            if prompt.size_mismatch:
                log.info("task %s: prompts drawn on another size of the image; placed by percent", task_id(task))
            height, width = entry.original_size
            found = self.segmenter().segment(None, prompt.points, prompt.point_labels, prompt.box,
                                             decoder=model.decoder, entry=entry)
        except (ImageError, PromptError, LabelloopError) as e:
            return TaskPrediction(error=f"task {task_id(task)}: {e}")
        region = PixelRegion(label_for(writer.control.labels, prompt.label), found.score, mask=found.mask)
        return TaskPrediction(result=writer.predict_regions([region], width, height), score=round(found.score, 4))

    def _automatic(self, model: SegmentationModel, tasks: list[dict], writers: list[RegionWriter], label_config: str,
                   params: dict, media) -> list[TaskPrediction]:
        refine = REFINE.read(params, default=True)
        measure = UNCERTAINTY.measure(params, self.settings.uncertainty, writers, self.name)
        segmenter = None
        if refine or has_smart_tools(label_config):
            try:
                segmenter = self.segmenter()
            except ModelUnavailable:
                segmenter = None  # automatic masks come from YOLO-seg alone
        warm = has_smart_tools(label_config) and len(tasks) <= WARM_TASKS.read(params, default=1)
        # the version's fine-tuned YOLO-seg for the labels it learned, the base model for the rest
        plans = [(w, control_plans(self.pool, w, t.detector if (t := model.trained(w.control)) else None))
                 for w in writers]

        def masks(writer: RegionWriter, dets: list, img) -> list[dict]:
            return self._image_masks(writer, dets, img, segmenter, refine, warm, model.decoder, media)

        return predict_controls(tasks, plans, media, self.settings, BATCH_PREDICT.read(params, default=8),
                                IMGSZ.read(params), measure, masks, what="masks")

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The pooled YOLO-seg features of the image the first control labels, from the model of its automatic
        masks (the control's fine-tuned one once trained, else its base model)."""
        params = params or {}
        writer = writer_for(_controls(label_config)[0], params)
        trained = model.trained(writer.control) if isinstance(model, SegmentationModel) else None
        detector = trained.detector if trained is not None else base_detector(self.pool, writer)
        return image_embeddings(detector, tasks, writer.control.value_key, media,
                                self.settings, BATCH_PREDICT.read(params, default=8), IMGSZ.read(params))

    @staticmethod
    def _image_masks(writer: RegionWriter, dets: list, img, segmenter: Segmenter | None, refine: bool,
                     warm: bool, decoder: Any = None, media: Any = None) -> list[dict]:
        """The regions of one image's detections, their boxes refined into masks by SAM (`box_masks`) with the
        served version's decoder; SAM's embedding is kept under the key the task's clicks look it up by."""
        found = found_regions(dets)
        boxes = np.array([r.xyxy for r in found], dtype=np.float32).reshape(-1, 4)
        try:
            image_key = media_key(img.path, media) if segmenter is not None else None
        except OSError:  # the file went (e.g. evicted from the media cache): keyed by its pixels instead
            image_key = None
        refined_masks = box_masks(segmenter, img.array, boxes, refine, warm, decoder, image_key)
        for region, refined in zip(found, refined_masks or []):
            region.mask = refined.mask
        return writer.predict_regions(found, img.width, img.height)

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        """One version: per control YOLO-seg fine-tuned on the submitted masks and polygons (controls with fewer
        than `min_train_images` annotated images are left as served), and SAM's mask decoder when SAM is here."""
        params = params or {}
        parent = parent if isinstance(parent, SegmentationModel) else SegmentationModel()
        try:
            guard = Guard(VAL_FRACTION.read(params, default=0.25), GUARD_METRIC.read(params, default="mask_map50_95"),
                          MIN_MAP_GAIN.read(params, default=0.0))
        except ValueError as e:
            raise BadRequest(f"training parameters: {e}") from None
        writers = [writer_for(c, params) for c in _controls(label_config)]
        yolo = fit_controls(self.pool, writers, examples, parent.yolo, out_dir, params, media,
                            self.settings.max_image_pixels, guard, MIN_TRAIN_IMAGES.read(params, default=4),
                            skip_small=True)
        metrics, verdicts = yolo.metrics, yolo.verdicts
        if yolo.manifest:
            write_manifest(out_dir, yolo.manifest)
        if yolo.trained:
            metrics.update({k: metrics[yolo.trained[0]][k] for k in SUMMARY})
        decoder = fit_decoder(self.segmenter, self.kind, examples, _controls(label_config), media,
                              self.settings.max_image_pixels, parent.decoder, parent.folder, out_dir, metrics,
                              val_fraction=VAL_FRACTION.read(params, default=0.25), lr=LR.read(params, default=1e-4),
                              epochs=EPOCHS.read(params, default=10), seed=SEED.read(params, default=0),
                              max_seconds=MAX_SECONDS.read(params))
        if decoder is None and not yolo.trained:
            why = [f"{n}: {m['skipped']}" for n, m in metrics.items() if isinstance(m, dict) and "skipped" in m]
            raise NotEnoughData("; ".join(why + [metrics["sam"]]) if why else
                                f"no submitted masks or polygons to train on; {metrics['sam']}")
        if decoder is not None and not decoder.improved:
            verdicts.append(f"mask decoder: {decoder.reason}")
        return TrainResult(n_examples=max(yolo.images, metrics.get("masks", 0)), metrics=metrics,
                           publish=not verdicts, reason="; ".join(verdicts))
