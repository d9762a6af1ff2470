"""What the detection package hands around: one detected object, one annotated image."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Detection:
    """One object found in an image, in pixels of the original image.

    Attributes:
        cls: the model's class name.
        score: confidence in [0, 1].
        xyxy: box corners (x1, y1, x2, y2).
        polygon: (N, 2) outline for segmentation models, else None.
    """

    cls: str
    score: float
    xyxy: tuple[float, float, float, float]
    polygon: np.ndarray | None = None


@dataclass
class Sample:
    """One annotated image for training or evaluation, in pixels of the original image.

    Attributes:
        id: a stable identifier (the task id): it decides the train/validation split.
        image: path of the image file.
        width, height: size of the image as annotated (after EXIF rotation).
        boxes: (class name, (x1, y1, x2, y2)) per object.
        polygons: (class name, (N, 2) array) per object outline; a box-only object has no polygon.
    """

    id: str
    image: Path
    width: int
    height: int
    boxes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    polygons: list[tuple[str, np.ndarray]] = field(default_factory=list)
