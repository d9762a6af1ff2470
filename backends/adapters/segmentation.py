"""Label Studio side of segmentation: `<Image>` with `<BrushLabels>` (masks) and/or `<PolygonLabels>`, prompted by
`<KeyPointLabels smart="true">` (positive and negative clicks) and `<RectangleLabels smart="true">` (boxes).

- With a context (the annotator clicked or dragged): one SAM mask for all prompts, with the prompt's label.
- Without one: instance masks of every object of the config's labels from YOLO-seg (the detection package), refined
  by SAM from the detector's boxes when SAM weights are present; and the image's SAM embedding is computed, so
  the annotator's first click is fast.

Environment: SAM_MODEL (vit_t = MobileSAM, default; vit_b, vit_l, vit_h), SAM_CHECKPOINT (a file name in
WEIGHTS_DIR or a path inside it or MODEL_DIR; default the official file of SAM_MODEL, downloaded the normal way),
SAM_CACHE_BYTES (in-process embedding cache, default 512 MiB; shared through Redis with REDIS_URL).
"""
from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from detection.geometry import points_to_polygon_value, region_outline, simplify_polygon
from detection.images import ImageError, load_image
from segmentation.cache import EmbeddingCache
from segmentation.engines import DEFAULT_KIND, load_sam, model_id, resolve_checkpoint
from segmentation.errors import EngineError, NotEnoughMasks, PromptError
from segmentation.finetune import finetune_decoder, load_decoder, save_decoder
from segmentation.predictor import Segmenter
from segmentation.prompts import parse_context

from ..base import Backend, LabeledTask, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData, TrainingError
from ..labels import Control, find_controls
from ..media import task_media
from ..lazy import Lazy
from ..params import Number
from .detection import BATCH_PREDICT, IMGSZ, THRESHOLD, DetectionBackend, image_answers

log = logging.getLogger(__name__)

RETRY_SAM_S = 60.0  # missing SAM weights are looked for again at most this often

# what a request's params or a project's extra params may set (checked at /setup and at every /predict)


@dataclass(frozen=True)
class Flag:
    """A yes/no parameter (JSON true/false, 1/0, or "true"/"false"/"yes"/"no"); read like `params.Number`."""

    name: str

    def parse(self, raw: Any) -> bool:
        text = str(raw).strip().lower() if isinstance(raw, (str, bool, int)) else None
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise BadRequest(f"{self.name!r} must be true or false, got {str(raw)[:40]!r}")

    def read(self, params: dict | None, default: bool | None = None) -> bool | None:
        raw = (params or {}).get(self.name)
        return default if raw is None or raw == "" else self.parse(raw)


REFINE = Flag("refine")
WARM_TASKS = Number("warm_tasks", 0, 1000, integer=True)
EPOCHS = Number("epochs", 1, 10_000, integer=True)
LR = Number("lr", 1e-8, 1.0)
VAL_FRACTION = Number("val_fraction", 0.05, 0.9)
SEED = Number("seed", 0, 2**31 - 1, integer=True)
MAX_SECONDS = Number("max_seconds", 1, 7 * 86400)
PARAMS = (IMGSZ, BATCH_PREDICT, THRESHOLD, REFINE, WARM_TASKS, EPOCHS, LR, VAL_FRACTION, SEED, MAX_SECONDS)


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("brushlabels", "polygonlabels"), ("image",), backend="segmentation"))


@lru_cache(maxsize=64)
def _smart(label_config: str) -> bool:
    """Whether the config has smart tools (then opening a task warms the SAM embedding)."""
    try:
        prompts = find_controls(label_config, ("keypointlabels", "rectanglelabels"), ("image",))
    except LabelloopError:
        return False
    return any(c.attrs.get("smart", "").lower() == "true" for c in prompts)


def _label_for(control: Control, wanted: str | None) -> str:
    """The control's label for a prompt's label: the same, or the same ignoring case, else the first."""
    if wanted in control.labels:
        return wanted
    for label in control.labels:
        if wanted and label.lower() == wanted.lower():
            return label
    return control.labels[0]


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """A (H, W) bool mask in Label Studio's brush RLE."""
    return mask2rle(np.asarray(mask, dtype=np.uint8) * 255)


def rle_to_mask(rle: list[int], width: int, height: int) -> np.ndarray:
    """Label Studio's brush RLE as a (H, W) bool mask."""
    flat = np.asarray(decode_rle(rle))
    if flat.size != width * height * 4:
        raise ValueError(f"the brush mask holds {flat.size // 4} pixels, the image {width}x{height}")
    return flat.reshape(height, width, 4)[:, :, 3] > 0


def polygon_mask(points: np.ndarray, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


def mask_outline(mask: np.ndarray) -> np.ndarray | None:
    """The outline of a mask's largest part, in pixels, simplified; None for an empty mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    return simplify_polygon(largest)


@dataclass
class SegmentationModel:
    """A served version: the fine-tuned mask decoder (None for the base model)."""

    decoder: Any = None


class SegmentationBackend(Backend):
    """SAM masks from clicks and boxes; automatic instance masks; SAM mask-decoder fine-tuning."""

    name = "segmentation"
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self.det = DetectionBackend(settings)
        self.kind = os.environ.get("SAM_MODEL", "").strip() or DEFAULT_KIND
        self.checkpoint_spec = os.environ.get("SAM_CHECKPOINT", "").strip() or None
        cache_bytes = int(os.environ.get("SAM_CACHE_BYTES", "").strip() or 512 << 20)
        self.cache = EmbeddingCache(cache_bytes, redis_url=settings.redis_url or None)
        self._segmenter = Lazy(self._load_segmenter, f"SAM ({self.kind}) is not available", (EngineError,),
                               RETRY_SAM_S)

    def segmenter(self) -> Segmenter:
        """The SAM segmenter, loaded once.

        Raises:
            ModelUnavailable: no SAM weights (the reason says where they were looked for).
        """
        return self._segmenter.get()

    def _load_segmenter(self) -> Segmenter:
        checkpoint = resolve_checkpoint(self.checkpoint_spec, self.kind, self.settings.weights_dir,
                                        [self.settings.model_dir])
        sam = load_sam(self.kind, checkpoint)
        return Segmenter(sam, model_id(self.kind, checkpoint, sam), self.cache)

    def status(self) -> dict[str, Any]:
        sam = self._segmenter
        state = "ready" if sam.loaded else "unavailable" if sam.error else "not loaded"
        body: dict[str, Any] = {"sam": {"model": self.kind, "state": state}, "cache": self.cache.stats()}
        if sam.error:
            body["sam"]["reason"] = sam.error + " (interactive masks are off; automatic masks still work)"
        return body

    # -- config and versions ------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        for c in _controls(label_config):
            if not c.labels:
                raise BadRequest(f"<{c.tag} name={c.name!r}> has no <Label> entries")
            self.det.weights_for(c, {}, "segment")

    def load_model(self, version_dir: Path | None) -> SegmentationModel:
        if version_dir is None:
            # YOLO-seg is needed for automatic masks; SAM is optional (its absence shows in /health)
            self.det.detector(self.det.weights_for(None, {}, "segment"), "segment")
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
        controls = _controls(label_config)
        if context and context.get("result"):
            return [self._interactive(model, task, controls, context, media) for task in tasks]
        return self._automatic(tasks, controls, label_config, params, media)

    def _load(self, task: dict, key: str, media) -> np.ndarray:
        return load_image(task_media(task, key, media, "an image"), self.settings.max_image_pixels)

    def _interactive(self, model: SegmentationModel, task: dict, controls, context: dict, media) -> TaskPrediction:
        tid = task.get("id", "?") if isinstance(task, dict) else "?"
        items = [i for i in context.get("result") or [] if isinstance(i, dict)]
        target = next((i.get("to_name") for i in items if i.get("to_name")), None)
        control = next((c for c in controls if c.to_name == target and c.tag == "brushlabels"), None) or \
            next((c for c in controls if c.to_name == target), controls[0])
        try:
            image = self._load(task, control.value_key, media)
            height, width = image.shape[:2]
            prompt = parse_context(context, width, height)
            if prompt is None:
                return TaskPrediction(result=[], score=None)
            if prompt.size_mismatch:
                log.info("task %s: prompts drawn on another size of the image; placed by percent", tid)
            segmenter = self.segmenter()
            found = segmenter.segment(image, prompt.points, prompt.point_labels, prompt.box, decoder=model.decoder)
        except (ImageError, PromptError, LabelloopError) as e:
            return TaskPrediction(error=f"task {tid}: {e}")
        region = self._mask_region(control, _label_for(control, prompt.label), found.mask, found.score)
        return TaskPrediction(result=[region] if region else [], score=round(found.score, 4))

    def _mask_region(self, control: Control, label: str, mask: np.ndarray, score: float) -> dict | None:
        height, width = mask.shape
        item = {"id": uuid.uuid4().hex[:10], "from_name": control.name, "to_name": control.to_name,
                "type": control.tag, "original_width": width, "original_height": height, "image_rotation": 0,
                "score": round(float(score), 4)}
        if not mask.any():
            return None
        if control.tag == "brushlabels":
            return {**item, "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [label]}}
        outline = mask_outline(mask)
        if outline is None:
            return None
        return {**item, "value": {**points_to_polygon_value(outline, width, height), "closed": True,
                                  "polygonlabels": [label]}}

    def _automatic(self, tasks: list[dict], controls, label_config: str, params: dict,
                   media) -> list[TaskPrediction]:
        keys = {c.value_key for c in controls}
        refine = REFINE.read(params, default=True)
        segmenter = None
        if refine or _smart(label_config):
            try:
                segmenter = self.segmenter()
            except ModelUnavailable:
                segmenter = None  # automatic masks come from YOLO-seg alone
        warm = WARM_TASKS.read(params, default=1)
        plans = [(control, self.det.plans(None, control, params)) for control in controls]
        answers: list[TaskPrediction | None] = [None] * len(tasks)
        for idx, images, errors in self.det.stream(tasks, keys, media, params):
            results: list[list[dict]] = [[] for _ in idx]
            for control, control_plans in plans:
                ok = [k for k, e in enumerate(errors) if e is None]
                arrays = [images[k][control.value_key].array for k in ok]
                found = self.det.run(control_plans, arrays, params) if control_plans and ok else [[] for _ in ok]
                for k, dets in zip(ok, found):
                    tid = tasks[idx[k]].get("id", "?")
                    if isinstance(dets, Exception):
                        errors[k] = f"task {tid}: prediction failed ({type(dets).__name__}: {dets})"
                        continue
                    try:
                        results[k].extend(self._image_masks(control, dets, images[k][control.value_key], segmenter,
                                                            refine, _smart(label_config) and len(tasks) <= warm))
                    except Exception as e:  # a SAM failure on one image must not cost the batch
                        log.exception("task %s: masks failed", tid)
                        errors[k] = f"task {tid}: masks failed ({type(e).__name__}: {e})"
            for i, answer in zip(idx, image_answers(results, errors)):
                answers[i] = answer
        return answers

    def _image_masks(self, control: Control, dets: list, img, segmenter: Segmenter | None, refine: bool,
                     warm: bool) -> list[dict]:
        """The regions of one image; with `warm`, its SAM embedding is computed too, so that the annotator's first
        click finds it cached."""
        regions, embedded = self._instances(control, dets, img, segmenter if refine else None)
        if segmenter is not None and warm and not embedded:
            segmenter.embed(img.array)
        return regions

    def _instances(self, control: Control, dets: list, img, segmenter: Segmenter | None
                   ) -> tuple[list[dict], bool]:
        """The regions of the detections, and whether SAM embedded the image (it refined their boxes)."""
        if not dets:
            return [], False
        if control.tag == "polygonlabels" and segmenter is None:
            return [r for label, d in dets if (r := self.det.region(control, label, d, img.width, img.height))], False
        if segmenter is not None:
            boxes = np.array([d.xyxy for _, d in dets], dtype=np.float32)
            masks = [m.mask for m in segmenter.segment_boxes(img.array, boxes)]
        else:
            masks = [polygon_mask(d.polygon, img.width, img.height) if d.polygon is not None
                     else np.zeros((img.height, img.width), bool) for _, d in dets]
        return [r for (label, d), mask in zip(dets, masks)
                if (r := self._mask_region(control, label, mask, d.score)) is not None], segmenter is not None

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        parent = parent if isinstance(parent, SegmentationModel) else SegmentationModel()
        try:
            base = self.segmenter()
        except ModelUnavailable as e:
            raise TrainingError(f"mask-decoder training needs SAM weights: {e}") from None
        pairs, skipped = self._masks(examples, _controls(label_config), media)
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
        reason = "" if report.improved else (
            f"held-out mIoU {report.metrics['val_miou_after']:.4f} is not above the served decoder's "
            f"{report.metrics['val_miou_before']:.4f}")
        return TrainResult(n_examples=len(pairs), metrics=metrics, publish=report.improved, reason=reason)

    def _masks(self, examples: list[LabeledTask], controls, media) -> tuple[list, dict]:
        """(image, mask) per submitted brush mask or polygon; counts of what was skipped and why."""
        pairs, skipped = [], {"skipped_images": 0, "skipped_regions": 0, "unknown_labels": {}}
        for ex in examples:
            task = {"id": ex.task_id, "data": ex.data}
            for control in controls:
                items = [r for r in ex.result if r.get("from_name") == control.name]
                if not items:
                    continue
                try:
                    image = self._load(task, control.value_key, media)
                except (ImageError, LabelloopError) as e:
                    log.warning("training example skipped: task %s: %s", ex.task_id, e)
                    skipped["skipped_images"] += 1
                    continue
                height, width = image.shape[:2]
                for item in items:
                    value = item.get("value") or {}
                    labels = value.get(control.tag) or []
                    if labels and labels[0] not in control.labels:
                        skipped["unknown_labels"][labels[0]] = skipped["unknown_labels"].get(labels[0], 0) + 1
                        continue
                    try:
                        if control.tag == "brushlabels":
                            mask = rle_to_mask(value["rle"], width, height)
                        else:
                            found = region_outline(item, width, height)
                            if found is None:
                                raise ValueError("no outline")
                            mask = polygon_mask(found[1], width, height)
                    except (KeyError, ValueError, TypeError) as e:
                        log.warning("task %s: region skipped: %s", ex.task_id, e)
                        skipped["skipped_regions"] += 1
                        continue
                    if mask.any():
                        pairs.append((image, mask))
        return pairs, skipped

