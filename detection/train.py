"""Fine-tuning YOLO detection / segmentation checkpoints on a labelloop dataset.

- `TrainOptions`: what a project's extra params may set.
- `finetune` trains a checkpoint (one that `detection.classes.extend_classes` gave the project's classes) with
  Ultralytics on a dataset written by `detection.dataset.build_dataset` and returns a `TrainReport` (best weights,
  epochs run, timing, final validation metrics).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)

import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.segment import SegmentationTrainer

from .classes import TASK_MODELS

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"
RESULTS_FILE = "results.json"
RUNS_DIR = "runs"


class TrainingError(RuntimeError):
    """Fine-tuning failed; the message says why (the original exception is chained as __cause__)."""


# --------------------------------------------------------------------------------------------------------------------
# options


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass
class TrainOptions:
    """Fine-tuning settings (a project's extra params can set them, see `from_params`).

    Attributes:
        epochs: training epochs (upper bound when early stopping triggers).
        imgsz: square training / validation image size (Ultralytics rounds it to a multiple of 32).
        batch: images per batch.
        patience: stop after this many epochs without validation improvement (0 disables early stopping).
        freeze: number of leading layers left untouched (10 = the whole YOLOv8/11 backbone; 0 = train everything).
        freeze_bn: keep every BatchNorm's running statistics fixed during training (recommended for short
            fine-tunes at small batch / image size: re-estimating them costs accuracy).
        device: "cpu", "0", "cuda:0", ...; None picks "0" when CUDA is available, else "cpu".
        workers: data loader processes (Ultralytics uses 0 on CPU whatever this says).
        seed: random seed (training runs with deterministic=True).
        lr0: initial learning rate; None lets Ultralytics choose optimizer and rate ("auto": AdamW with a rate fitted
            to the class count for short runs). Setting it uses AdamW with that rate.
    """

    epochs: int = 30
    imgsz: int = 640
    batch: int = 8
    patience: int = 10
    freeze: int = 10
    freeze_bn: bool = True
    device: str | None = None
    workers: int = field(default_factory=_default_workers)
    seed: int = 0
    lr0: float | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> TrainOptions:
        """Options from a project's extra params: reads the keys named like the fields, ignores other keys.

        Strings are converted ("20" -> 20, "false" -> False, "" / "auto" / None -> the default for device and lr0).

        Raises:
            ValueError: a value of the wrong type or out of range, naming the key.
        """
        params = dict(params or {})
        opts = cls()
        for f in fields(cls):
            if f.name not in params:
                continue
            value = params[f.name]
            conv = _CONVERTERS[f.name]
            try:
                setattr(opts, f.name, conv(value))
            except (TypeError, ValueError) as e:
                raise ValueError(f"invalid training parameter {f.name}={value!r}: {e}") from None
        return opts

    def resolved_device(self) -> str:
        return self.device if self.device else ("0" if torch.cuda.is_available() else "cpu")


def _to_int(minimum: int, maximum: int | None = None):
    def conv(v: Any) -> int:
        if isinstance(v, bool):
            raise TypeError("expected an integer, got a boolean")
        if isinstance(v, str):
            v = v.strip()
            n = int(float(v)) if v and float(v).is_integer() else int(v)
        elif isinstance(v, float):
            if not v.is_integer():
                raise ValueError("expected a whole number")
            n = int(v)
        elif isinstance(v, int):
            n = v
        else:
            raise TypeError(f"expected an integer, got {type(v).__name__}")
        if n < minimum:
            raise ValueError(f"must be >= {minimum}")
        if maximum is not None and n > maximum:
            raise ValueError(f"must be <= {maximum}")
        return n

    return conv


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return v.strip().lower() in {"1", "true", "yes", "on"}
    raise ValueError("expected true or false")


def _to_device(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise TypeError("expected a device name")
    if isinstance(v, int):
        if v < 0:
            raise ValueError("a GPU index is >= 0")
        return str(v)
    if not isinstance(v, str):
        raise TypeError(f"expected a device name, got {type(v).__name__}")
    v = v.strip()
    return None if v.lower() in {"", "auto"} else v


def _to_lr(v: Any) -> float | None:
    if v is None or (isinstance(v, str) and v.strip().lower() in {"", "auto", "none"}):
        return None
    if isinstance(v, bool):
        raise TypeError("expected a number")
    x = float(v)
    if not (math.isfinite(x) and 0 < x < 1):
        raise ValueError("must be within (0, 1)")
    return x


_CONVERTERS = {
    "epochs": _to_int(1),
    "imgsz": _to_int(32, 2048),  # memory grows with batch x imgsz^2
    "batch": _to_int(1, 256),
    "patience": _to_int(0),
    "freeze": _to_int(0),
    "freeze_bn": _to_bool,
    "device": _to_device,
    "workers": _to_int(0),
    "seed": _to_int(0),
    "lr0": _to_lr,
}


# --------------------------------------------------------------------------------------------------------------------
# training


class _FreezeBatchNorm:
    """Trainer mixin: every BatchNorm2d keeps its running statistics (eval mode) while the rest trains."""

    def _model_train(self):
        super()._model_train()  # self.model.train(), then Ultralytics' own BN freeze for frozen layers
        for m in self.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()


class FrozenBNDetectionTrainer(_FreezeBatchNorm, DetectionTrainer):
    """DetectionTrainer that never updates BatchNorm running statistics."""


class FrozenBNSegmentationTrainer(_FreezeBatchNorm, SegmentationTrainer):
    """SegmentationTrainer that never updates BatchNorm running statistics."""


_TRAINERS = {
    ("detect", True): FrozenBNDetectionTrainer,
    ("detect", False): DetectionTrainer,
    ("segment", True): FrozenBNSegmentationTrainer,
    ("segment", False): SegmentationTrainer,
}


@dataclass
class TrainReport:
    """What `finetune` produced.

    Attributes:
        weights: out_dir/weights.pt, the best epoch's checkpoint (by Ultralytics' fitness on the val split).
        epochs_run: epochs actually trained (fewer than asked when early stopping triggered).
        seconds: wall time of the whole run (setup, epochs, final validation).
        epoch_seconds: wall time of each epoch (training + validation).
        best_epoch: 1-based epoch of `weights`.
        metrics: Ultralytics' final validation of `weights`, e.g. "metrics/mAP50(B)", "metrics/mAP50-95(B)" (and "(M)"
            mask metrics for segmentation).
        optimizer_steps: optimiser updates made over the whole run (one per batch); None when unknown.
    """

    weights: Path
    epochs_run: int
    seconds: float
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    optimizer_steps: int | None = None

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = str(self.weights)
        d["seconds_per_epoch"] = self.seconds_per_epoch
        return d


def _floats(d: Any) -> dict[str, float]:
    out = {}
    for k, v in (d or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _train_args(opts: TrainOptions, data_yaml: Path, runs: Path, device: str) -> dict[str, Any]:
    """Ultralytics' train() arguments for `opts`: plots off, validation every epoch, AMP only on a CUDA GPU,
    deterministic, the run in `runs`."""
    args: dict[str, Any] = dict(
        data=str(data_yaml.absolute()),
        epochs=opts.epochs,
        imgsz=opts.imgsz,
        batch=opts.batch,
        patience=opts.patience,
        freeze=opts.freeze if opts.freeze > 0 else None,
        device=device,
        workers=opts.workers,
        seed=opts.seed,
        deterministic=True,
        project=str(runs),
        name="train",
        exist_ok=True,
        # one optimiser step per batch: Ultralytics' nominal batch of 64 accumulates gradients over 64 images per
        # step (and ramps that up during warm-up), so a project of a dozen images got a handful of steps in ten
        # epochs, most at the warm-up's near-zero rate: a new class row stayed where it was initialised
        nbs=opts.batch,
        plots=False,
        val=True,
        save=True,
        amp=device.lower() not in {"cpu", "mps"},
        verbose=False,
    )
    if opts.lr0 is not None:
        args.update(optimizer="AdamW", lr0=opts.lr0)
    return args


class _EpochClock:
    """The wall time of each epoch (training + validation), from Ultralytics' callbacks."""

    def __init__(self):
        self.seconds: list[float] = []
        self._started: float | None = None

    def attach(self, model: YOLO) -> None:
        model.add_callback("on_train_epoch_start", self._start)
        model.add_callback("on_fit_epoch_end", self._end)

    def _start(self, trainer) -> None:
        self._started = time.time()

    def _end(self, trainer) -> None:  # also fired once by the final validation, when no epoch is open
        if self._started is not None:
            self.seconds.append(time.time() - self._started)
            self._started = None


def _keep_best(trainer, out_dir: Path, t0: float, clock: _EpochClock) -> TrainReport:
    """Copy the run's best checkpoint (else its last) to out_dir/weights.pt and report on the run."""
    best = Path(trainer.best)
    if not best.is_file():
        best = Path(trainer.last)
    if not best.is_file():
        raise TrainingError("training finished without saving a checkpoint")
    weights = out_dir / WEIGHTS_FILE
    shutil.copyfile(best, weights)
    return TrainReport(
        weights=weights,
        epochs_run=int(trainer.epoch - trainer.start_epoch + 1),
        seconds=time.time() - t0,
        epoch_seconds=[round(s, 3) for s in clock.seconds],
        best_epoch=getattr(getattr(trainer, "stopper", None), "best_epoch", None),
        metrics=_floats(trainer.metrics),
        optimizer_steps=_optimizer_steps(trainer),
    )


def _optimizer_steps(trainer) -> int | None:
    """How many updates the trainer's optimiser made (Adam-family optimisers count them per parameter)."""
    steps = [int(state["step"]) for state in getattr(trainer.optimizer, "state", {}).values() if "step" in state]
    return max(steps) if steps else None


def finetune(start: str | Path, data_yaml: Path, out_dir: Path, opts: TrainOptions | None = None,
             task: str = "detect") -> TrainReport:
    """Fine-tune `start` on `data_yaml` with Ultralytics and keep only the best weights.

    Runs ``YOLO(start).train(...)`` in out_dir/runs (plots off, validation every epoch, AMP only on a GPU,
    deterministic), with a trainer that freezes BatchNorm statistics when `opts.freeze_bn`. Afterwards
    out_dir holds only ``weights.pt`` (the best epoch, stripped of optimizer state) and ``results.json`` (the
    report as JSON plus the options used); the run folder with last.pt is deleted.

    Args:
        start: .pt checkpoint whose class list matches data.yaml's names (see `extend_classes`).
        data_yaml: dataset from `detection.dataset.build_dataset` (in a writable folder).
        out_dir: output folder (created).
        opts: training settings; defaults to TrainOptions().
        task: "detect" or "segment"; must be the checkpoint's task.

    Returns:
        A TrainReport; `report.weights` is out_dir/weights.pt.

    Raises:
        TrainingError: anything that stops training, with the cause chained.
    """
    opts = opts or TrainOptions()
    if task not in TASK_MODELS:
        raise ValueError(f"task must be one of {sorted(TASK_MODELS)}, got {task!r}")
    start, data_yaml, out_dir = Path(start), Path(data_yaml), Path(out_dir).absolute()
    if not start.is_file():
        raise TrainingError(f"start weights not found: {start}")
    if not data_yaml.is_file():
        raise TrainingError(f"dataset not found: {data_yaml}")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = out_dir / RUNS_DIR
    device = opts.resolved_device()
    t0, clock = time.time(), _EpochClock()
    try:
        model = YOLO(str(start))
        if model.task != task:
            raise TrainingError(f"{start} is a {model.task} model, not {task}")
        clock.attach(model)
        detection.runtime.keep_process_threads()
        model.train(trainer=_TRAINERS[(task, opts.freeze_bn)], **_train_args(opts, data_yaml, runs, device))
        report = _keep_best(model.trainer, out_dir, t0, clock)
    except TrainingError:
        raise
    except Exception as e:
        raise TrainingError(f"fine-tuning {start.name} on {data_yaml} failed: {type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    (out_dir / RESULTS_FILE).write_text(
        json.dumps({**report.to_dict(), "options": asdict(opts), "device": device, "task": task}, indent=2),
        encoding="utf-8",
    )
    log.info("fine-tuned %s: %d epochs in %.0f s (%.1f s/epoch), best epoch %s -> %s", start.name,
             report.epochs_run, report.seconds, report.seconds_per_epoch, report.best_epoch, report.weights)
    return report
