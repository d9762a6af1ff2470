"""Training a skeleton's pose model and deciding whether to publish it: the candidate and the served model are
validated by Ultralytics' own pose metrics (OKS-based mAP of the keypoints, `PoseValidator`) on the same held-out
images, and the candidate is published only if it is at least as good (plus a required gain). Like
`detection.guard`, for keypoints.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)
import detection.guard

from detection.train import TrainOptions, TrainingError
from ultralytics import YOLO

from .dataset import build_dataset
from .train import finetune_pose, start_model
from .types import PoseSample

log = logging.getLogger(__name__)

METRICS = ("pose_map50", "pose_map50_95")


@dataclass(frozen=True)
class Guard(detection.guard.Guard):
    """How a candidate is validated and judged (`detection.guard.Guard`), by the pose metrics."""

    METRICS: ClassVar[tuple[str, ...]] = METRICS
    metric: str = "pose_map50_95"


@dataclass
class PoseFit:
    """A trained candidate: its weights, its metrics and whether it may be served (else `reason` says why not)."""

    weights: Path
    labels: list[str]
    metrics: dict[str, Any]
    publish: bool
    reason: str


def validate(weights: str | Path, data_yaml: Path, opts: TrainOptions, work: Path) -> dict[str, float]:
    """Ultralytics' pose validation of `weights` on the dataset's val images: pose mAP50 and mAP50-95 (OKS)."""
    detection.runtime.keep_process_threads()
    runs = Path(work) / "val"
    try:
        m = YOLO(str(weights), task="pose").val(data=str(data_yaml), split="val", imgsz=opts.imgsz,
                                                 batch=opts.batch, device=opts.resolved_device(), plots=False,
                                                 verbose=False, project=str(runs), name="val", exist_ok=True)
    except Exception as e:
        raise TrainingError(f"validating {weights} failed: {type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    return {"pose_map50": float(m.pose.map50), "pose_map50_95": float(m.pose.map),
            "box_map50_95": float(m.box.map)}


def train_pose(samples: Sequence[PoseSample], labels: list[str], start: str | Path, from_detector: bool,
               served: str | Path | None, work: Path, opts: TrainOptions, guard: Guard) -> PoseFit:
    """Train a pose model for `labels` on `samples` and judge it against the served model.

    Args:
        start: the weights to start from: the served version's pose weights, or (`from_detector`) detection
            weights for a new pose model.
        served: the served pose model's weights for these same labels, or None when nothing predicts them yet
            (it then scores 0).
        work: the folder to train in; the candidate ends up as `work/weights.pt`.

    Raises:
        TrainingError: training or validation failed.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    data = build_dataset(samples, labels, work / "dataset", guard.val_fraction)
    try:
        report = finetune_pose(start_model(start, from_detector), data.data_yaml, work, opts)
        new_m = validate(report.weights, data.data_yaml, opts, work)
        old_m = validate(served, data.data_yaml, opts, work) if served else {k: 0.0 for k in new_m}
    finally:
        shutil.rmtree(work / "dataset", ignore_errors=True)  # links to media-cache files: nothing to keep
    metric, gain = guard.metric, guard.min_gain
    publish = new_m[metric] >= old_m[metric] + gain - 1e-9
    reason = "" if publish else (f"validation {metric} {new_m[metric]:.4f} is below the served model's "
                                 f"{old_m[metric]:.4f}" + (f" + {gain}" if gain else ""))
    metrics = {**new_m, **{f"served_{k}": v for k, v in old_m.items()}, "labels": list(labels),
               "train_images": len(data.train_ids), "val_images": len(data.val_ids), "epochs": report.epochs_run,
               "seconds": round(report.seconds, 1), "from_detector": from_detector}
    log.info("pose candidate %s %.4f, served %.4f: %s", metric, new_m[metric], old_m[metric],
             "published" if publish else reason)
    return PoseFit(report.weights, list(labels), metrics, publish, reason)
