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
        class_probs: (k,) the model's probability of each class that was asked for (in the order asked, all its
            classes when none were), for detection models; None where the model does not give them.
    """

    cls: str
    score: float
    xyxy: tuple[float, float, float, float]
    polygon: np.ndarray | None = None
    class_probs: np.ndarray | None = None


@dataclass
class LabeledObject:
    """One annotated object, in pixels of the original image.

    Attributes:
        cls: the training class name.
        xyxy: box corners (x1, y1, x2, y2).
        polygon: (N, 2) outline of the object, or None for a box-only object (e.g. a rectangle).
    """

    cls: str
    xyxy: tuple[float, float, float, float]
    polygon: np.ndarray | None = None


@dataclass
class Sample:
    """One annotated image for training or evaluation, in pixels of the original image.

    Attributes:
        id: a stable identifier (the task id): it decides the train/validation split.
        image: path of the image file.
        width, height: size of the image as annotated (after EXIF rotation).
        objects: one `LabeledObject` per annotated object, its box and (when outlined) its polygon together.
        boxes: read-only, (class name, (x1, y1, x2, y2)) per object: the ground truth `detection.evaluate.evaluate`
            takes per image.
    """

    id: str
    image: Path
    width: int
    height: int
    objects: list[LabeledObject] = field(default_factory=list)

    @property
    def boxes(self) -> list[tuple[str, tuple[float, float, float, float]]]:
        return [(o.cls, o.xyxy) for o in self.objects]
