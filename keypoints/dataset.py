"""Annotated `PoseSample`s -> an Ultralytics pose dataset (images, label files, data.yaml with `kpt_shape` and
`flip_idx`), split into train and validation by sample id like detection's (`detection.dataset.split`).

A label line is ``0 xc yc w h  x1 y1 v1 ... xK yK vK``, normalised to [0, 1]; an instance is one class ("instance")
and a point it lacks is written as ``0 0 0`` (v=0: not labeled), a labeled point with v=2 (visible).
"""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from detection.dataset import IMG_SUFFIXES, safe_stem, split

from .skeleton import flip_index
from .types import Instance, PoseSample

log = logging.getLogger(__name__)

CLASS_NAME = "instance"


def label_line(instance: Instance, labels: Sequence[str], width: int, height: int) -> str | None:
    """The YOLO pose line of one instance, or None when it has no labeled point of `labels` or no area."""
    index = {lb: i for i, lb in enumerate(labels)}
    kpts = np.zeros((len(labels), 3))
    for p in instance.points:
        i = index.get(p.label)
        if i is not None:
            kpts[i] = (min(max(p.x / width, 0.0), 1.0), min(max(p.y / height, 0.0), 1.0), 2.0)
    if not kpts[:, 2].any():
        return None
    x1, y1, x2, y2 = instance.box()
    x1, x2 = (min(max(v, 0.0), width) for v in (x1, x2))
    y1, y2 = (min(max(v, 0.0), height) for v in (y1, y2))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    box = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return "0 " + " ".join(f"{v:.6f}" for v in box) + " " + " ".join(
        f"{x:.6f} {y:.6f} {int(v)}" for x, y, v in kpts)


@dataclass(frozen=True)
class PoseDataset:
    """What `build_dataset` wrote: data.yaml, and the ids on each side (only samples with a readable image)."""

    data_yaml: Path
    train_ids: list[str]
    val_ids: list[str]


def _suffix(path: Path) -> str:
    """The file's suffix when Ultralytics takes it for an image, else ".jpg" (media-cache files may have none;
    OpenCV reads the content whatever the name says)."""
    suffix = path.suffix.lower()
    return suffix if suffix[1:] in IMG_SUFFIXES else ".jpg"


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(Path(src).resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_dataset(samples: Sequence[PoseSample], labels: Sequence[str], out_dir: Path,
                  val_fraction: float = 0.2) -> PoseDataset:
    """Write the pose dataset of `samples` for the keypoint `labels` (in order) under `out_dir` (replaced).

    A single usable sample serves as both train and validation (Ultralytics needs both).

    Raises:
        ValueError: no sample has a readable image file.
    """
    out_dir = Path(out_dir).absolute()
    shutil.rmtree(out_dir, ignore_errors=True)
    usable = [s for s in samples if Path(s.image).is_file()]
    if len(usable) < len(samples):
        log.warning("%d samples without their image file skipped", len(samples) - len(usable))
    if not usable:
        raise ValueError("no sample has a readable image")
    train_ids, val_ids = split([str(s.id) for s in usable], val_fraction)
    if not val_ids:
        val_ids = list(train_ids)
    for part, ids in (("train", set(train_ids)), ("val", set(val_ids))):
        (out_dir / "images" / part).mkdir(parents=True)
        (out_dir / "labels" / part).mkdir(parents=True)
        for s in usable:
            if str(s.id) not in ids:
                continue
            stem = safe_stem(str(s.id))
            _link(Path(s.image), out_dir / "images" / part / f"{stem}{_suffix(Path(s.image))}")
            lines = [ln for ln in (label_line(i, labels, s.width, s.height) for i in s.instances) if ln]
            (out_dir / "labels" / part / f"{stem}.txt").write_text("".join(f"{ln}\n" for ln in lines))
    data = {"path": str(out_dir), "train": "images/train", "val": "images/val", "names": {0: CLASS_NAME},
            "kpt_shape": [len(labels), 3], "flip_idx": flip_index(labels)}
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return PoseDataset(data_yaml, list(train_ids), list(val_ids))
