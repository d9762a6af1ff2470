"""Training a YOLO pose model for a skeleton of K keypoints with Ultralytics: the first version from the detection
weights (`yolov8n-pose.yaml` with `kpt_shape` [K, 3], the backbone and box head loaded from `yolov8n.pt`), later
ones from the served version's weights. Options, arguments and the BatchNorm freeze are detection's
(`detection.train`), so a project's extra params mean the same for boxes and keypoints.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)

from detection.train import (RESULTS_FILE, RUNS_DIR, WEIGHTS_FILE, TrainingError, TrainOptions, TrainReport,
                             _FreezeBatchNorm, _floats, _train_args)
from ultralytics import YOLO
from ultralytics.models.yolo.pose import PoseTrainer

log = logging.getLogger(__name__)

POSE_YAML = "yolov8n-pose.yaml"  # the architecture of yolov8n.pt with a pose head


class FrozenBNPoseTrainer(_FreezeBatchNorm, PoseTrainer):
    """PoseTrainer that never updates BatchNorm running statistics."""


def start_model(start: str | Path, from_detector: bool) -> YOLO:
    """The model training starts from: a pose model's own weights, or (`from_detector`) a new pose model whose
    backbone and box head come from detection weights (the keypoint head starts untrained; the trainer gives it
    the dataset's `kpt_shape` and keeps every weight whose shape still fits).

    Raises:
        TrainingError: the weights are missing or of the wrong task.
    """
    if not Path(start).is_file():
        raise TrainingError(f"start weights not found: {start}")
    try:
        model = YOLO(POSE_YAML, task="pose").load(str(start)) if from_detector else YOLO(str(start))
    except Exception as e:
        raise TrainingError(f"{start} does not load: {type(e).__name__}: {e}") from e
    if model.task != "pose":
        raise TrainingError(f"{start} is a {model.task} model, not a pose model")
    return model


def finetune_pose(model: YOLO, data_yaml: Path, out_dir: Path, opts: TrainOptions | None = None) -> TrainReport:
    """Train `model` on a pose dataset (`keypoints.dataset.build_dataset`) and keep only the best weights
    (out_dir/weights.pt) and results.json, like `detection.train.finetune`.

    Raises:
        TrainingError: anything that stops training, with the cause chained.
    """
    opts = opts or TrainOptions()
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, device, t0 = out_dir / RUNS_DIR, opts.resolved_device(), time.time()
    epoch_seconds: list[float] = []
    started: list[float] = []
    model.add_callback("on_train_epoch_start", lambda trainer: started.__setitem__(slice(None), [time.time()]))
    model.add_callback("on_fit_epoch_end",
                       lambda trainer: epoch_seconds.append(time.time() - started.pop()) if started else None)
    trainer = FrozenBNPoseTrainer if opts.freeze_bn else PoseTrainer
    try:
        detection.runtime.keep_process_threads()
        model.train(trainer=trainer, **_train_args(opts, Path(data_yaml), runs, device))
        best = Path(model.trainer.best) if Path(model.trainer.best).is_file() else Path(model.trainer.last)
        if not best.is_file():
            raise TrainingError("training finished without saving a checkpoint")
        weights = out_dir / WEIGHTS_FILE
        shutil.copyfile(best, weights)
        report = TrainReport(weights=weights, epochs_run=int(model.trainer.epoch - model.trainer.start_epoch + 1),
                             seconds=time.time() - t0, epoch_seconds=[round(s, 3) for s in epoch_seconds],
                             best_epoch=getattr(getattr(model.trainer, "stopper", None), "best_epoch", None),
                             metrics=_floats(model.trainer.metrics))
    except TrainingError:
        raise
    except Exception as e:
        raise TrainingError(f"pose training on {data_yaml} failed: {type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    (out_dir / RESULTS_FILE).write_text(json.dumps({**report.to_dict(), "options": asdict(opts), "device": device,
                                                    "task": "pose"}, indent=2), encoding="utf-8")
    log.info("pose model trained: %d epochs in %.0f s -> %s", report.epochs_run, report.seconds, weights)
    return report
