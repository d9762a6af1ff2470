"""Fine-tuning on a small project makes one optimiser step per batch.

Ultralytics accumulates gradients up to a nominal batch of 64 images (`nbs`) and ramps the accumulation up during
warm-up, so on a project of a dozen images ten epochs made a handful of updates, most at the warm-up's near-zero
rate (this test's run: 1 update instead of 12): a new class started from a fresh classification row was never
learned (bench/segmentation_learning_bench.py: mask and box mAP50 0.001 for a new "Vehicle" class from 10 coco128
images).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import detection.runtime  # noqa: F401
from detection.classes import extend_classes
from detection.dataset import build_dataset
from detection.train import TrainOptions, finetune
from detection.types import LabeledObject, Sample


def _square_samples(datasets_dir: Path, n: int) -> list[Sample]:
    """n coco128 images, each with one outlined "Thing" (a square in its centre)."""
    images = sorted((datasets_dir / "coco128" / "images" / "train2017").glob("*.jpg"))[:n]
    samples = []
    for path in images:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        x1, y1, x2, y2 = w * 0.3, h * 0.3, w * 0.7, h * 0.7
        square = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
        samples.append(Sample(id=path.stem, image=path, width=w, height=h,
                              objects=[LabeledObject("Thing", (x1, y1, x2, y2), square)]))
    return samples


@pytest.mark.slow
def test_small_project_gets_one_optimizer_step_per_batch(weights_dir: Path, datasets_dir: Path, tmp_path: Path):
    data = build_dataset(_square_samples(datasets_dir, 8), ["Thing"], tmp_path / "ds", task="segment",
                         val_fraction=0.25)
    start = extend_classes(weights_dir / "yolov8n-seg.pt", ["Thing"], tmp_path / "start.pt")
    opts = TrainOptions(epochs=3, imgsz=64, batch=2, patience=0, device="cpu")
    report = finetune(start, data.data_yaml, tmp_path / "out", opts, "segment")

    batches = math.ceil(len(data.train_ids) / opts.batch)
    assert batches >= 2
    # with Ultralytics' default accumulation (nbs 64) this run made 1 update (at the warm-up's rate 0) instead of 12
    assert report.optimizer_steps == opts.epochs * batches
