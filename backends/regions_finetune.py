"""Fine-tuning the YOLO model of each region control (boxes, outlines, brush masks) on its submitted regions: the
annotations as `detection` samples (`regions_training`), the candidate trained from the served version's weights
(else the control's base model) and judged against the served model's runs (`regions_models.control_plans`) on
the same held-out images by `detection.guard.train_control`; the candidates are written as one version in
`detection.trained`'s manifest format.

`fit_controls` is what a backend's `fit` calls for its YOLO part; it returns the manifest entries, metrics and
verdicts, and the caller writes the manifest (a backend may add parts of its own to the version first).
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detection.evaluate import PREDICT_CONF
from detection.guard import ControlFit, Guard, train_control, training_classes
from detection.predict import Plan
from detection.train import TrainingError as YoloTrainingError
from detection.train import TrainOptions
from detection.trained import TrainedControl, TrainedModel
from detection.weights import DEFAULT_WEIGHTS, WeightsError

from .base import LabeledTask
from .exceptions import BadRequest, NotEnoughData, TrainingError
from .regions_models import BATCH_PREDICT, IMGSZ, base_detector, control_plans, label_plan
from .regions_training import detection_samples, sized_images
from .regions_writers import RegionWriter

log = logging.getLogger(__name__)


@dataclass
class RegionsFit:
    """The YOLO part of a version: per control its manifest entry (weights relative to the version folder: trained
    now, or the served version's model carried over for a control not trained now); the names of the controls
    trained now, with their metrics; `verdicts` say why a control's candidate may not be served (none: publish)."""

    manifest: dict[str, dict] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    verdicts: list[str] = field(default_factory=list)
    images: int = 0


def fit_controls(pool, writers: list[RegionWriter], examples: list[LabeledTask], served: TrainedModel,
                 out_dir: Path, params: dict, media, max_pixels: int, guard: Guard, min_images: int,
                 skip_small: bool = False) -> RegionsFit:
    """Fine-tune and judge the model of every control with annotated regions (into `out_dir/control-<k>/`).

    Args:
        pool: the backend's `DetectorPool`.
        served: the served version's fine-tuned models (empty for the base model).
        min_images: the annotated images a control needs; fewer raise `NotEnoughData`, or with `skip_small` leave
            the control out (its metrics say why).

    Raises:
        BadRequest: bad training parameters or start weights.
        NotEnoughData: a control with too few annotated images (unless `skip_small`).
        TrainingError: training failed.
    """
    try:
        opts = TrainOptions.from_params(params)
    except ValueError as e:
        raise BadRequest(f"training parameters: {e}") from None
    sizes = sized_images(examples, {w.control.value_key for w in writers}, media, max_pixels)
    out = RegionsFit(metrics={"skipped_images": sum(s is None for s in sizes)})
    for k, writer in enumerate(writers):
        name = writer.control.name
        try:
            fit = fit_control(pool, writer, examples, sizes, served.controls.get(name), out_dir / f"control-{k}",
                              opts, guard, params, min_images, max_pixels, out.metrics,
                              frozenset(w.control.name for w in writers if w is not writer))
        except NotEnoughData as e:
            if not skip_small:
                raise
            out.metrics[name] = {"skipped": str(e)}
            fit = None
        if fit is None:
            if (kept := served.controls.get(name)) is not None:
                out.manifest[name] = _carry(kept, out_dir / f"control-{k}", f"control-{k}/weights.pt")
            continue
        out.manifest[name] = {"task": fit.task, "classes": fit.classes, "weights": f"control-{k}/weights.pt",
                              "threshold": fit.metrics.get("learned_threshold")}
        out.trained.append(name)
        out.metrics[name] = fit.metrics
        out.images += fit.metrics["train_images"] + fit.metrics["val_images"]
        if not fit.publish:
            out.verdicts.append(f"{name}: {fit.reason}")
    return out


def fit_control(pool, writer: RegionWriter, examples: list[LabeledTask], sizes: list, trained: TrainedControl | None,
                work: Path, opts: TrainOptions, guard: Guard, params: dict, min_images: int, max_pixels: int,
                metrics: dict, others: frozenset[str] = frozenset()) -> ControlFit | None:
    """Train and judge one control's model; None when nothing of it was annotated. Labels the config no longer
    has are counted in `metrics["unknown_labels"]`. Images annotated only with the `others` controls (of the same
    image) are left out: their objects are not this control's background."""
    control, task = writer.control, writer.model_task
    examples, sizes = _own(control, examples, sizes, others)
    base = base_detector(pool, writer)
    base_plan = label_plan(base, control, PREDICT_CONF)
    cls_of = training_classes(control.labels, base_plan.labels if base_plan else {})
    samples, unknown = detection_samples(control, examples, sizes, cls_of)
    if unknown:
        metrics.setdefault("unknown_labels", {}).update(unknown)
    annotated = sum(bool(s.objects) for s in samples)
    if not annotated:
        return None
    if annotated < min_images:
        raise NotEnoughData(f"{control.name}: {annotated} annotated images, need {min_images} "
                            "(extra_params min_train_images)")
    used = {o.cls for s in samples for o in s.objects}
    class_names = [cls_of[lb] for lb in control.labels if cls_of[lb] in used]
    # the served model's runs, its labels turned into training classes for the comparison
    served = [Plan(p.detector, {c: cls_of[lb] for c, lb in p.labels.items()}, p.conf)
              for p in control_plans(pool, writer, trained.detector if trained is not None else None)]
    try:
        fit = train_control(samples, class_names, start_weights(pool, writer, trained, params), served, work,
                            task, opts, guard, max_pixels, IMGSZ.read(params),
                            BATCH_PREDICT.read(params, default=8))
    except YoloTrainingError as e:
        raise TrainingError(f"{control.name}: {e}") from None
    except ValueError as e:
        raise BadRequest(f"{control.name}: {e}") from None
    fit.metrics["new_classes"] = [c for c in class_names if c not in base.names]
    return fit


def _carry(kept: TrainedControl, work: Path, weights: str) -> dict:
    """The served version's model of a control copied into the new version (which would lose it else)."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept.weights, work / "weights.pt")
    return {"task": kept.detector.task, "classes": list(kept.detector.names), "weights": weights,
            "threshold": kept.threshold, "carried": True}


def _own(control, examples: list[LabeledTask], sizes: list, others: frozenset[str]) -> tuple[list, list]:
    """The examples (and their sizes) with regions of `control`, or with none of the `others` controls either
    (an image submitted empty is a true background image)."""
    def keep(ex: LabeledTask) -> bool:
        names = {r.get("from_name") for r in ex.result}
        return control.name in names or not names & others

    kept = [(ex, size) for ex, size in zip(examples, sizes) if keep(ex)]
    return [ex for ex, _ in kept], [size for _, size in kept]


def start_weights(pool, writer: RegionWriter, trained: TrainedControl | None, params: dict) -> str:
    """The weights a control's candidate starts from: the served version's, else `train_from` or the control's
    `model_path` when trainable (.pt), else the default weights of its task.

    Raises:
        BadRequest: weights that may not be loaded.
    """
    if trained is not None and trained.weights.suffix == ".pt":
        return str(trained.weights)
    spec = params.get("train_from") or writer.model_path
    if not spec or not str(spec).endswith(".pt"):
        spec = DEFAULT_WEIGHTS[writer.model_task]  # exported formats (.onnx, ...) cannot be trained: the .pt
    try:
        return pool.resolve(spec, writer.model_task)
    except WeightsError as e:
        raise BadRequest(str(e)) from None
