"""Label Studio side of detection: `<Image>` with `<RectangleLabels>` (boxes) and/or `<PolygonLabels>` (instance
outlines from a YOLO segmentation model).

Per control tag: `model_path` (weights inside WEIGHTS_DIR or MODEL_DIR), `model_score_threshold`, and per label
`predicted_values` (the model classes it stands for). Only labels of the config are predicted.
"""
from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from detection.batches import PixelBudget, pixel_batches, release_memory
from detection.dataset import build_dataset
from detection.evaluate import PREDICT_CONF, evaluate
from detection.geometry import (outline_xyxy, points_to_polygon_value, region_outline, simplify_polygon,
                                xyxy_to_rect_value)
from detection.images import ImageError, image_size, load_image
from detection.model import Detector, ModelLoadError
from detection.train import TrainingError as YoloTrainingError
from detection.train import TrainOptions, extend_classes, finetune
from detection.types import Detection, LabeledObject, Sample
from detection.trained import TrainedModel, TrainedModelError, is_trained_weights, load_trained, write_manifest
from detection.weights import DEFAULT_ALLOWED, DEFAULT_WEIGHTS, WeightsError, resolve_weights

from ..base import Backend, LabeledTask, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, NotEnoughData, TrainingError, UnsupportedConfig
from ..labels import Control, LabelMap, find_controls
from ..media import task_media
from ..params import Number, OneOf

log = logging.getLogger(__name__)

# the least annotation time for yolov8n on coco128: 44 % saved against 28 % at 0.5 (bench/results/effort_detection.json)
DEFAULT_THRESHOLD = 0.1
FORWARD_PIXELS = 8 * 1024 * 1024  # most letterboxed pixels in one forward pass (8 images at 1024)
RELEASE_AFTER_PIXELS = 20_000_000  # a request that decoded more hands the freed memory back to the system

# what a request's params or a project's extra params may set (checked at /setup and at every /predict)
IMGSZ = Number("imgsz", 32, 2048, integer=True)  # prediction and training; memory grows with its square
BATCH_PREDICT = Number("batch_predict", 1, 64, integer=True)
THRESHOLD = Number("model_score_threshold", 0.0, 1.0)
PARAMS = (IMGSZ, BATCH_PREDICT, THRESHOLD, Number("batch", 1, 256, integer=True),
          Number("epochs", 1, 10_000, integer=True), Number("min_train_images", 1, 1_000_000, integer=True),
          Number("val_fraction", 0.0, 0.9), Number("min_map_gain", -1.0, 1.0),
          OneOf("guard_metric", ("map50", "map50_95")))
MAX_BASE_DETECTORS = 4  # base models kept loaded per process (each YOLO: tens to hundreds of MB)


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("rectanglelabels", "polygonlabels"), ("image",), backend="detection"))


def _task(control: Control) -> str:
    """The YOLO task a control needs: outlines and masks come from a segmentation model."""
    return "segment" if control.tag in ("polygonlabels", "brushlabels") else "detect"


def _threshold(control: Control, params: dict) -> float:
    raw = control.attrs.get("model_score_threshold", params.get("model_score_threshold", DEFAULT_THRESHOLD))
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> model_score_threshold={raw!r} is not a "
                                "number") from None
    if not 0.0 <= value <= 1.0:
        raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> model_score_threshold={raw!r} is not "
                                "between 0 and 1")
    return value


_LABEL_MAPS: dict[tuple, LabelMap] = {}


def label_map(control: Control, names: list[str]) -> LabelMap:
    """`LabelMap` of a control onto a model's classes, built once, so that labels unknown to the model are
    logged once rather than on every request."""
    key = (control.name, control.tag, tuple(control.labels),
           tuple(sorted((k, tuple(sorted(v.items()))) for k, v in control.label_attrs.items())), tuple(names))
    found = _LABEL_MAPS.get(key)
    if found is None:
        if len(_LABEL_MAPS) > 512:
            _LABEL_MAPS.clear()
        found = _LABEL_MAPS[key] = LabelMap(control, names)
    return found


def _tid(task: Any) -> Any:
    return task.get("id", "?") if isinstance(task, dict) else "?"


def image_answers(results: list[list[dict]], errors: list[str | None]) -> list[TaskPrediction]:
    """One answer per image: its error, or its regions scored with the image's confidence.

    The image's confidence is the mean of its regions' scores; an image with nothing found is scored 0, i.e. as
    uncertain as it gets, so that it is looked at rather than trusted.
    """
    answers = []
    for res, err in zip(results, errors):
        if err is not None:
            answers.append(TaskPrediction(error=err))
            continue
        scores = [r["score"] for r in res]
        answers.append(TaskPrediction(result=res, score=sum(scores) / len(scores) if scores else 0.0))
    return answers


@dataclass
class Plan:
    """One model run for one control: which detector, which of its classes, and which config label each is."""

    detector: Detector
    labels: LabelMap
    classes: list[str]
    conf: float


DetectionModel = TrainedModel


@dataclass(frozen=True)
class _Validation:
    """How a fine-tuned model is validated and judged (extra_params val_fraction, guard_metric, min_map_gain): read
    before any training, so that a bad value costs no training run."""

    val_fraction: float
    metric: str
    min_gain: float

    @classmethod
    def from_params(cls, params: dict) -> _Validation:
        metric = str(params.get("guard_metric", "map50_95"))
        if metric not in ("map50", "map50_95"):
            raise BadRequest(f"guard_metric must be map50 or map50_95, not {metric!r}")
        return cls(val_fraction=float(params.get("val_fraction", 0.2)), metric=metric,
                   min_gain=float(params.get("min_map_gain", 0.0)))


@dataclass
class _Image:
    path: Path
    width: int
    height: int
    array: Any = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


class DetectionBackend(Backend):
    """Pre-annotates boxes and polygons with YOLO; fine-tunes on submitted regions, guarded by validation mAP."""

    name = "detection"
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self._detectors: OrderedDict[str, Detector] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    # -- weights ------------------------------------------------------------------------------------------
    def resolve(self, spec: str | None, task: str) -> str:
        """The weights a spec names, if a label config may load them: allowed files of WEIGHTS_DIR
        (`ALLOWED_WEIGHTS`) or the weights of this backend's own versions in MODEL_DIR.

        Raises:
            WeightsError: anything else.
        """
        return resolve_weights(spec, task, self.settings.weights_dir,
                               self.settings.allowed_weights or DEFAULT_ALLOWED,
                               written=lambda path: is_trained_weights(path, self.settings.model_dir))

    def weights_for(self, control: Control | None, params: dict, task: str) -> str:
        spec = (control.attrs.get("model_path") if control else None) or params.get("model_path") or None
        try:
            return self.resolve(spec, task)
        except WeightsError as e:
            raise UnsupportedConfig(str(e)) from None

    def detector(self, weights: str, task: str | None = None) -> Detector:
        """A base detector, loaded once per process; at most `MAX_BASE_DETECTORS` stay loaded."""
        with self._lock:
            found = self._detectors.get(weights)
            if found is None:
                try:
                    found = Detector.load(weights, task)
                except ModelLoadError as e:
                    raise LabelloopError(str(e)) from None
                self._detectors[weights] = found
                while len(self._detectors) > MAX_BASE_DETECTORS:
                    self._detectors.popitem(last=False)
            self._detectors.move_to_end(weights)
            return found

    # -- config -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        for c in _controls(label_config):
            if not c.labels:
                raise UnsupportedConfig(f"<{c.tag} name={c.name!r}> has no <Label> entries")
            _threshold(c, {})
            self.weights_for(c, {}, _task(c))

    # -- serving ------------------------------------------------------------------------------------------
    def load_model(self, version_dir: Path | None) -> DetectionModel:
        if version_dir is None:
            # the default box model now, so that missing weights show in /health before the first request
            self.detector(self.weights_for(None, {}, "detect"), "detect")
            return DetectionModel()
        try:
            return load_trained(Path(version_dir))
        except (TrainedModelError, ModelLoadError) as e:
            raise LabelloopError(str(e)) from None

    def plans(self, model: DetectionModel | None, control: Control, params: dict) -> list[Plan]:
        """The model runs that cover a control's labels: its fine-tuned model first, the base model for the
        labels the fine-tuned one was not trained on."""
        conf = _threshold(control, params)
        task = _task(control)
        plans: list[Plan] = []
        covered: set[str] = set()
        trained = model.controls.get(control.name) if model else None
        if trained is not None:
            lm = label_map(control, trained.detector.names)
            if lm.model_classes:
                plans.append(Plan(trained.detector, lm, lm.model_classes, conf))
                covered = {lm.label(c) for c in lm.model_classes}
        if len(covered) < len(control.labels):
            base = self.detector(self.weights_for(control, params, task), task)
            if task == "segment" and base.task != "segment":
                raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> needs a segmentation model; "
                                        f"{base.source} is a {base.task} model (use e.g. yolov8n-seg.pt)")
            lm = label_map(control, base.names)
            classes = [c for c in lm.model_classes if lm.label(c) not in covered]
            if classes:
                plans.append(Plan(base, lm, classes, conf))
        return plans

    def load_images(self, tasks: list[dict], keys: set[str], media, decode: bool) -> tuple[list[dict], list]:
        images: list[dict[str, _Image]] = []
        errors: list[str | None] = []
        for task in tasks:
            tid = task.get("id", "?") if isinstance(task, dict) else "?"
            try:
                found = {key: self._image(task, key, media, decode) for key in keys}
                images.append(found)
                errors.append(None)
            except (ImageError, LabelloopError) as e:
                images.append({})
                errors.append(f"task {tid}: {e}")
        return images, errors

    def _image(self, task: dict, key: str, media, decode: bool) -> _Image:
        path = task_media(task, key, media, "an image")
        if decode:
            array = load_image(path, self.settings.max_image_pixels)
            return _Image(path, array.shape[1], array.shape[0], array)
        return _Image(path, *image_size(path, self.settings.max_image_pixels))

    def run(self, plans: list[Plan], arrays: list, params: dict, conf: float | None = None
            ) -> list[list[tuple[str, Detection]]]:
        """(config label, detection) per image, over all plans. A batch that fails is retried image by image, so
        one bad image costs only itself; its entry is then an Exception."""
        out: list[Any] = [[] for _ in arrays]
        imgsz = IMGSZ.read(params)
        batch = BATCH_PREDICT.read(params, default=8)
        if imgsz:  # activation memory grows with batch x imgsz^2: a large imgsz runs in smaller forward passes
            batch = max(1, min(batch, FORWARD_PIXELS // (imgsz * imgsz)))
        for plan in plans:
            kw = dict(conf=plan.conf if conf is None else conf, classes=plan.classes, imgsz=imgsz, batch=batch)
            try:
                per_image = plan.detector.predict(arrays, **kw)
            except Exception:
                log.warning("batch prediction failed; retrying image by image", exc_info=True)
                per_image = []
                for a in arrays:
                    try:
                        per_image.append(plan.detector.predict([a], **kw)[0])
                    except Exception as e:
                        per_image.append(e)
            for i, dets in enumerate(per_image):
                if isinstance(out[i], Exception):
                    continue
                if isinstance(dets, Exception):
                    out[i] = dets
                    continue
                out[i].extend((plan.labels.label(d.cls), d) for d in dets if plan.labels.label(d.cls))
        return out

    def stream(self, tasks: list[dict], keys: set[str], media, params: dict):
        """The request's images batch by batch: (task indices, images, errors) with the images decoded.

        Every image is sized from its header first, so that the request's pixel budget (MAX_REQUEST_PIXELS) is
        spent in task order before anything is decoded; a task over it gets an error. Then each batch (at most
        `batch_predict` images and MAX_IMAGE_PIXELS pixels) is decoded, handed out, and dropped when the caller
        asks for the next one; the freed memory goes back to the system at the end.
        """
        sized, errors = self.load_images(tasks, keys, media, decode=False)
        budget = PixelBudget(self.settings.max_request_pixels)
        for i, found in enumerate(sized):
            pixels = sum(img.pixels for img in found.values())
            if errors[i] is None and not budget.take(pixels):
                errors[i] = (f"task {_tid(tasks[i])}: its images would take the request over "
                             f"MAX_REQUEST_PIXELS ({self.settings.max_request_pixels}); ask for fewer tasks at once")
        failed = [i for i, e in enumerate(errors) if e is not None]
        if failed:
            yield failed, [{} for _ in failed], [errors[i] for i in failed]
        ok = [i for i, e in enumerate(errors) if e is None]
        sizes = [sum(img.pixels for img in sized[i].values()) for i in ok]
        decoded = 0
        try:
            for group in pixel_batches(sizes, BATCH_PREDICT.read(params, default=8), self.settings.max_image_pixels):
                idx = [ok[g] for g in group]
                images, batch_errors = [], []
                for i in idx:
                    try:
                        images.append({k: self._decode(img) for k, img in sized[i].items()})
                        batch_errors.append(None)
                    except (ImageError, OSError) as e:
                        images.append({})
                        batch_errors.append(f"task {_tid(tasks[i])}: {e}")
                decoded += sum(sizes[g] for g in group)
                yield idx, images, batch_errors
                for found in images:  # the caller may still hold the list: empty it, so the arrays go now
                    found.clear()
                images.clear()
        finally:
            if decoded > RELEASE_AFTER_PIXELS:
                release_memory()

    def _decode(self, img: _Image) -> _Image:
        array = load_image(img.path, self.settings.max_image_pixels)
        return _Image(img.path, array.shape[1], array.shape[0], array)

    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        controls = _controls(label_config)
        plans = [(control, self.plans(model, control, params)) for control in controls]
        answers: list[TaskPrediction | None] = [None] * len(tasks)
        for idx, images, errors in self.stream(tasks, {c.value_key for c in controls}, media, params):
            results: list[list[dict]] = [[] for _ in idx]
            for control, control_plans in plans:
                ok = [k for k, e in enumerate(errors) if e is None]
                if not control_plans or not ok:
                    continue
                found = self.run(control_plans, [images[k][control.value_key].array for k in ok], params)
                for k, dets in zip(ok, found):
                    if isinstance(dets, Exception):
                        errors[k] = f"task {_tid(tasks[idx[k]])}: prediction failed ({type(dets).__name__}: {dets})"
                        continue
                    results[k].extend(self._regions(control, dets, images[k][control.value_key]))
            for i, answer in zip(idx, image_answers(results, errors)):
                answers[i] = answer
        return answers

    def _regions(self, control: Control, dets: list[tuple[str, Detection]], img: _Image) -> list[dict]:
        return [r for label, d in dets if (r := self.region(control, label, d, img.width, img.height)) is not None]

    @staticmethod
    def region(control: Control, label: str, d: Detection, width: int, height: int) -> dict | None:
        item = {"id": uuid.uuid4().hex[:10], "from_name": control.name, "to_name": control.to_name,
                "type": control.tag, "original_width": width, "original_height": height, "image_rotation": 0,
                "score": round(float(d.score), 4)}
        if control.tag == "rectanglelabels":
            value = xyxy_to_rect_value(d.xyxy, width, height)
            if value["width"] <= 0 or value["height"] <= 0:
                return None
            return {**item, "value": {**value, "rectanglelabels": [label]}}
        if d.polygon is None:
            return None
        points = simplify_polygon(d.polygon)
        if points is None:
            return None
        return {**item, "value": {**points_to_polygon_value(points, width, height), "closed": True,
                                  "polygonlabels": [label]}}

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        parent = parent if isinstance(parent, DetectionModel) else DetectionModel()
        try:
            opts = TrainOptions.from_params(params)
        except ValueError as e:
            raise BadRequest(f"training parameters: {e}") from None
        validation = _Validation.from_params(params)
        min_images = int(params.get("min_train_images", 4))
        controls = _controls(label_config)
        tasks = [{"id": ex.task_id, "data": ex.data} for ex in examples]
        images, errors = self.load_images(tasks, {c.value_key for c in controls}, media, decode=False)
        for err in errors:
            if err:
                log.warning("training example skipped: %s", err)
        out_dir = Path(out_dir)
        meta: dict[str, Any] = {"controls": {}}
        metrics: dict[str, Any] = {"skipped_images": sum(e is not None for e in errors)}
        verdicts: list[str] = []
        for k, control in enumerate(controls):
            base_names = self._base_names(control, params)
            cls_of = self._class_of(control, base_names)
            samples, unknown = self._samples(control, examples, images, errors, cls_of)
            if unknown:
                metrics.setdefault("unknown_labels", {}).update(unknown)
            if not any(s.objects for s in samples):
                continue
            if len(samples) < min_images:
                raise NotEnoughData(f"{control.name}: {len(samples)} annotated images, need {min_images} "
                                    "(extra_params min_train_images)")
            entry, m, better, why = self._fit_control(control, samples, parent, out_dir / f"control-{k}", opts,
                                                      params, base_names, cls_of, validation)
            meta["controls"][control.name] = {**entry, "weights": f"control-{k}/weights.pt"}
            metrics[control.name] = m
            if not better:
                verdicts.append(f"{control.name}: {why}")
        if not meta["controls"]:
            raise NotEnoughData("no annotated regions for any RectangleLabels/PolygonLabels of the config")
        first = metrics[next(iter(meta["controls"]))]
        metrics.update({k: first[k] for k in ("map50", "map50_95", "served_map50", "served_map50_95")})
        write_manifest(out_dir, meta["controls"])
        n = sum(metrics[c]["train_images"] + metrics[c]["val_images"] for c in meta["controls"])
        return TrainResult(n_examples=n, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))

    def _class_of(self, control: Control, base_names: list[str]) -> dict[str, str]:
        """Config label -> training class name: the base model's class when exactly one maps to the label (its
        learned weights are kept), else the label itself (trained as a new class). Fine-tuned versions keep these
        names, so every version maps back onto the config the same way."""
        lm = label_map(control, base_names)
        out = {}
        for label in control.labels:
            classes = [c for c in lm.model_classes if lm.label(c) == label]
            out[label] = classes[0] if len(classes) == 1 else label
        return out

    def _start_weights(self, control: Control, parent: DetectionModel, params: dict) -> str:
        trained = parent.controls.get(control.name)
        if trained is not None and trained.weights.suffix == ".pt":
            return str(trained.weights)
        task = _task(control)
        spec = params.get("train_from") or control.attrs.get("model_path") or params.get("model_path")
        if not spec or not str(spec).endswith(".pt"):
            spec = DEFAULT_WEIGHTS[task]  # exported formats (.onnx, ...) cannot be trained: start from the .pt
        try:
            return self.resolve(spec, task)
        except WeightsError as e:
            raise BadRequest(str(e)) from None

    def _base_names(self, control: Control, params: dict) -> list[str]:
        task = _task(control)
        return self.detector(self.weights_for(control, params, task), task).names

    def _samples(self, control, examples, images, errors, cls_of: dict[str, str]) -> tuple[list[Sample], dict]:
        samples, unknown = [], {}
        for ex, img, err in zip(examples, images, errors):
            if err is not None:
                continue
            im = img[control.value_key]
            sample = Sample(id=str(ex.task_id), image=im.path, width=im.width, height=im.height)
            for item in ex.result:
                if item.get("from_name") != control.name:
                    continue
                found = region_outline(item, im.width, im.height)
                if found is None:
                    continue
                label, outline = found
                if label not in control.labels:
                    unknown[label] = unknown.get(label, 0) + 1
                    log.warning("task %s: label %r is not in <%s name=%r> any more; region skipped", ex.task_id,
                                label, control.tag, control.name)
                    continue
                xyxy = outline_xyxy(outline, im.width, im.height)
                polygon = outline if control.tag == "polygonlabels" else None
                sample.objects.append(LabeledObject(cls_of[label], xyxy, polygon))
            samples.append(sample)
        return samples, unknown

    def _fit_control(self, control: Control, samples: list[Sample], parent: DetectionModel, work: Path,
                     opts: TrainOptions, params: dict, base_names: list[str], cls_of: dict[str, str],
                     validation: _Validation) -> tuple[dict, dict, bool, str]:
        task = _task(control)
        served = self.plans(parent, control, params)
        used = {o.cls for s in samples for o in s.objects}
        class_names = [cls_of[lb] for lb in control.labels if cls_of[lb] in used]
        work.mkdir(parents=True, exist_ok=True)
        start = extend_classes(self._start_weights(control, parent, params), class_names, work / "start.pt")
        data = build_dataset(samples, class_names, work / "dataset", task=task,
                             val_fraction=validation.val_fraction)
        try:
            report = finetune(start, data.data_yaml, work, opts, task)
        except YoloTrainingError as e:
            raise TrainingError(f"{control.name}: {e}") from None
        finally:
            Path(start).unlink(missing_ok=True)
            shutil.rmtree(work / "dataset", ignore_errors=True)  # links to media-cache files: nothing to keep
        val_ids = set(data.val_ids)  # the images validation ran on: build_dataset skips unreadable ones
        val = [s for s in samples if str(s.id) in val_ids]
        new = Detector.load(report.weights, task)
        new_plan = Plan(new, label_map(control, new.names), list(new.names), PREDICT_CONF)
        arrays = [load_image(s.image, self.settings.max_image_pixels) for s in val]  # decoded once, for both models
        new_m = self._evaluate([new_plan], val, arrays, control, cls_of, class_names, params)
        old_m = self._evaluate(served, val, arrays, control, cls_of, class_names, params)
        metric, gain = validation.metric, validation.min_gain
        better = new_m[metric] >= old_m[metric] + gain - 1e-9
        why = (f"validation {metric} {new_m[metric]:.4f} is below the served model's {old_m[metric]:.4f}"
               + (f" + {gain}" if gain else ""))
        m = {"map50": new_m["map50"], "map50_95": new_m["map50_95"], "served_map50": old_m["map50"],
             "served_map50_95": old_m["map50_95"], "per_class": new_m["per_class"],
             "train_images": len(data.train_ids), "val_images": len(val), "classes": class_names,
             "new_classes": [c for c in class_names if c not in base_names],
             "epochs": report.epochs_run,
             "seconds_per_epoch": round(report.seconds_per_epoch, 2), "seconds": round(report.seconds, 1),
             "task": task}
        entry = {"task": task, "classes": class_names}
        return entry, m, better, why

    def _evaluate(self, plans: list[Plan], val: list[Sample], arrays: list, control: Control,
                  cls_of: dict[str, str], class_names: list[str], params: dict) -> dict:
        """mAP of `plans` on the validation samples `val`, whose decoded images are `arrays`."""
        if not val:
            return {"map50": 0.0, "map50_95": 0.0, "per_class": {}}
        found = self.run(plans, arrays, params, conf=PREDICT_CONF)
        predictions = []
        for dets in found:
            if isinstance(dets, Exception):
                dets = []
            predictions.append([Detection(cls_of.get(label, label), d.score, d.xyxy, d.polygon) for label, d in dets])
        return evaluate(predictions, [s.boxes for s in val], class_names)
