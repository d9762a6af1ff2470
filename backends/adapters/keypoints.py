"""Label Studio side of keypoints: `<KeyPointLabels>` on an `<Image>` (not the smart prompts of segmentation), with
or without `<RectangleLabels>` for each instance's box.

Labels that name facial landmarks (by `predicted_values` or their name: `nose_tip`, `left_eye`, `chin`, "30" for a
landmark index, see `keypoints.landmarks`) are predicted from dlib's 68 face landmarks, the face box as the
rectangle; the other labels, a skeleton of their own, by a YOLO pose model learned from the submitted keypoints
and published when its validation pose mAP (OKS) is not below the served version's. A label neither covers is
never predicted. The ML is the `keypoints` package's; the region format is `regions_keypoints`'.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detection.images import ImageError, image_size
from detection.pool import DetectorPool
from detection.train import TrainingError as YoloTrainingError
from detection.train import TrainOptions
from detection.weights import WeightsError
from keypoints.faces import FaceLandmarker, FaceModelError
from keypoints.guard import Guard, train_pose
from keypoints.model import PoseModel, PoseModelError
from keypoints.types import Instance, Keypoint, PoseSample

from ..base import Adapter, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData, TrainingError, UnsupportedConfig
from ..params import Number, OneOf
from ..regions_images import image_embeddings, image_files, stream, task_id
from ..regions_keypoints import KeypointWriter, Skeleton, annotated_instances, score_threshold, skeletons
from ..regions_models import BATCH_PREDICT, IMGSZ, THRESHOLD, base_detector

log = logging.getLogger(__name__)

POINT_THRESHOLD = Number("model_point_threshold", 0.0, 1.0)
VAL_FRACTION = Number("val_fraction", 0.0, 0.9)
MIN_MAP_GAIN = Number("min_map_gain", -1.0, 1.0)
GUARD_METRIC = OneOf("guard_metric", ("pose_map50", "pose_map50_95"))
MIN_TRAIN_IMAGES = Number("min_train_images", 1, 1_000_000, integer=True)
PARAMS = (IMGSZ, BATCH_PREDICT, THRESHOLD, POINT_THRESHOLD, VAL_FRACTION, MIN_MAP_GAIN, GUARD_METRIC,
          MIN_TRAIN_IMAGES, Number("batch", 1, 256, integer=True), Number("epochs", 1, 10_000, integer=True))
FACE_THRESHOLD = 0.5  # dlib's own detection threshold (margin 0, `keypoints.faces.confidence`)
POSE_THRESHOLD = 0.25  # Ultralytics' default
POSE_POINT_THRESHOLD = 0.5  # below this a pose model's keypoint is not visible (Ultralytics' plots hide it too)
MANIFEST = "keypoints.json"


@dataclass
class KeypointsModel:
    """A served version: per control name, its learned pose model and the rectangle label its boxes get."""

    pose: dict[str, tuple[PoseModel, str | None]] = field(default_factory=dict)


class KeypointsAdapter(Adapter):
    """Pre-annotates keypoints: face landmarks with dlib, other skeletons with a YOLO pose model learned here."""

    name = "keypoints"
    PARAMS = PARAMS
    MEASURES = ("least_confidence",)  # instance scores only: no class probabilities to take a margin of

    def __init__(self, settings):
        super().__init__(settings)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights)
        self._faces: FaceLandmarker | None = None
        self._lock = threading.Lock()

    # -- models -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        for s in skeletons(label_config):
            if not s.control.labels:
                raise UnsupportedConfig(f"<KeyPointLabels name={s.control.name!r}> has no <Label> entries")
            try:
                score_threshold(s.control, {})
            except BadRequest as e:
                raise UnsupportedConfig(f"<KeyPointLabels name={s.control.name!r}>: {e}") from None

    def faces(self) -> FaceLandmarker:
        with self._lock:
            if self._faces is None:
                try:
                    self._faces = FaceLandmarker.load()
                except FaceModelError as e:
                    raise ModelUnavailable(str(e)) from None
            return self._faces

    def load_model(self, version_dir: Path | None) -> KeypointsModel:
        self.faces()  # a missing dlib shows in /health before the first request
        if version_dir is None:
            return KeypointsModel()
        try:
            manifest = json.loads((Path(version_dir) / MANIFEST).read_text())
            return KeypointsModel({name: (PoseModel.load(Path(version_dir) / m["weights"], m["labels"]),
                                          m.get("box_label")) for name, m in manifest.items()})
        except (OSError, ValueError, KeyError, TypeError, PoseModelError) as e:
            raise LabelloopError(f"{version_dir} holds no keypoint model: {e}") from None

    @staticmethod
    def pose(model: Any, skeleton: Skeleton) -> tuple[PoseModel, str | None] | None:
        """The served pose model of a control while it still predicts the control's learned labels."""
        found = model.pose.get(skeleton.control.name) if isinstance(model, KeypointsModel) else None
        return found if found is not None and tuple(found[0].labels) == skeleton.learned else None

    # -- serving ------------------------------------------------------------------------------------------
    def regions(self, model: Any, skeleton: Skeleton, im, params: dict) -> tuple[list[dict], list[float]]:
        """The result items of one control on one decoded image, and the score of each instance found: faces
        from dlib for the landmark labels, the served pose model's instances for the learned ones."""
        threshold = score_threshold(skeleton.control, params)
        found: list[tuple[Instance, KeypointWriter, float]] = []
        if skeleton.faces:
            writer = KeypointWriter(skeleton.control, skeleton.rect, skeleton.face_box_label())
            for f in self.faces().faces(im.array, FACE_THRESHOLD if threshold is None else threshold):
                points = [Keypoint(lb, *f.point(idx), f.score) for lb, idx in skeleton.faces.items()]
                found.append((Instance(points, f.score, f.xyxy), writer, 0.0))
        served = self.pose(model, skeleton)
        if served is not None:
            writer = KeypointWriter(skeleton.control, skeleton.rect, served[1])
            least = POINT_THRESHOLD.read(params, default=POSE_POINT_THRESHOLD)
            for inst in served[0].predict([im.array], POSE_THRESHOLD if threshold is None else threshold,
                                          IMGSZ.read(params))[0]:
                found.append((inst, writer, least))
        items = [item for inst, writer, least in found for item in writer.items(inst, im.width, im.height, least)]
        return items, [inst.score for inst, _, _ in found]

    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        controls = skeletons(label_config)
        answers = [TaskPrediction() for _ in tasks]
        keys = {s.control.value_key for s in controls}
        for idx, images, errors in stream(tasks, keys, media, self.settings, BATCH_PREDICT.read(params, default=8)):
            for j, i in enumerate(idx):
                if errors[j] is not None:
                    answers[i].error = errors[j]
                    continue
                scores: list[float] = []
                try:
                    for s in controls:
                        items, found = self.regions(model, s, images[j][s.control.value_key], params)
                        answers[i].result += items
                        scores += found
                except (RuntimeError, ValueError) as e:  # dlib and torch raise these on an image they cannot take
                    answers[i].error = f"task {task_id(tasks[i])}: prediction failed ({type(e).__name__}: {e})"
                    continue
                # the least confident instance; nothing found: look at it rather than trust it
                answers[i].score = round(min(scores), 4) if scores else 0.0
        return answers

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The pooled features of the base detector (detection's) of the image the first control labels."""
        params = params or {}
        return image_embeddings(base_detector(self.pool, None), tasks, skeletons(label_config)[0].control.value_key,
                                media, self.settings, BATCH_PREDICT.read(params, default=8), IMGSZ.read(params))

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        try:
            opts = TrainOptions.from_params(params)
            guard = Guard(VAL_FRACTION.read(params, default=0.2), GUARD_METRIC.read(params, default="pose_map50_95"),
                          MIN_MAP_GAIN.read(params, default=0.0))
        except ValueError as e:
            raise BadRequest(f"training parameters: {e}") from None
        learned = [s for s in skeletons(label_config) if s.learned]
        if not learned:
            raise NotEnoughData("every keypoint label of the config is a face landmark predicted by dlib: there is "
                                "no skeleton to learn")
        manifest, metrics, verdicts = {}, {}, []
        for k, s in enumerate(learned):
            samples, boxes, unknown = self._samples(s, examples, media)
            if unknown:
                metrics.setdefault("unknown_labels", {}).update(unknown)
            if not any(smp.instances for smp in samples):
                continue
            need = MIN_TRAIN_IMAGES.read(params, default=4)
            if len(samples) < need:
                raise NotEnoughData(f"{s.control.name}: {len(samples)} annotated images, need {need} "
                                    "(extra_params min_train_images)")
            fit = self._fit(s, samples, parent, Path(out_dir) / f"control-{k}", opts, guard, params)
            box_label = boxes.most_common(1)[0][0] if boxes else None
            manifest[s.control.name] = {"weights": f"control-{k}/weights.pt", "labels": fit.labels,
                                        "box_label": box_label}
            metrics[s.control.name] = fit.metrics
            if not fit.publish:
                verdicts.append(f"{s.control.name}: {fit.reason}")
        if not manifest:
            raise NotEnoughData("no annotated keypoints of a learned skeleton (labels that are not face landmarks)")
        (Path(out_dir) / MANIFEST).write_text(json.dumps(manifest))
        first = metrics[next(iter(manifest))]
        metrics.update({k: first[k] for k in ("pose_map50", "pose_map50_95", "served_pose_map50_95")})
        n = sum(metrics[c]["train_images"] + metrics[c]["val_images"] for c in manifest)
        return TrainResult(n_examples=n, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))

    def _fit(self, s: Skeleton, samples: list[PoseSample], parent: Any, work: Path, opts: TrainOptions,
             guard: Guard, params: dict):
        served = self.pose(parent, s)
        served_weights = served[0].weights if served else None
        spec = params.get("train_from")
        if spec is not None and not isinstance(spec, str):
            raise BadRequest(f"'train_from' must be the name of weights in WEIGHTS_DIR, got {str(spec)[:40]!r}")
        try:
            start = served_weights or self.pool.resolve(spec or None, "detect")
        except WeightsError as e:
            raise BadRequest(str(e)) from None
        try:
            return train_pose(samples, list(s.learned), start, served is None, served_weights, work, opts, guard)
        except YoloTrainingError as e:
            raise TrainingError(f"{s.control.name}: {e}") from None

    def _samples(self, s: Skeleton, examples: list[LabeledTask], media) -> tuple[list[PoseSample], Counter, dict]:
        """The examples with a usable image as `PoseSample`s of the learned labels, the rectangle labels their
        instances had, and the count of points per label the config no longer has."""
        files, errors = image_files([{"id": ex.task_id, "data": ex.data} for ex in examples],
                                    {s.control.value_key}, media)
        samples, boxes, unknown = [], Counter(), Counter()
        for ex, found, err in zip(examples, files, errors):
            try:
                if err is not None:
                    raise LabelloopError(err)
                path = found[s.control.value_key]
                width, height = image_size(path, self.settings.max_image_pixels)
            except (ImageError, OSError, LabelloopError) as e:
                log.warning("training example skipped: %s", e)
                continue
            read = annotated_instances(ex.result, s.control, s.rect, width, height)
            if read is None:
                log.warning("task %s: keypoints of one label twice and no rectangles to group them: skipped",
                            ex.task_id)
                continue
            instances, lost, rect_labels = read
            unknown.update(lost)
            boxes.update(rect_labels)
            kept = [Instance([p for p in i.points if p.label in s.learned], 1.0, i.xyxy) for i in instances]
            samples.append(PoseSample(str(ex.task_id), Path(path), width, height, [i for i in kept if i.points]))
        return samples, boxes, dict(unknown)
