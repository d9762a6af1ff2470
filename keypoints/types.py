"""What the keypoints package hands around: one found or annotated instance (a face, a body, an object) with its
named points, in pixels of the original image."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Keypoint:
    """One named point of an instance, in pixels; `score` in [0, 1] (1 for an annotated point)."""

    label: str
    x: float
    y: float
    score: float = 1.0


@dataclass
class Instance:
    """One instance in an image.

    Attributes:
        points: its named points, at most one per label.
        score: the model's confidence in the instance, in [0, 1] (1 for an annotated one).
        xyxy: its box (x1, y1, x2, y2) in pixels, or None where there is none (annotated points without a box).
    """

    points: list[Keypoint] = field(default_factory=list)
    score: float = 1.0
    xyxy: tuple[float, float, float, float] | None = None

    def box(self, pad: float = 0.1) -> tuple[float, float, float, float]:
        """Its box, or the box around its points widened by `pad` of their extent on each side (at least 4 px)."""
        if self.xyxy is not None:
            return self.xyxy
        xs, ys = [p.x for p in self.points], [p.y for p in self.points]
        dx, dy = max(pad * (max(xs) - min(xs)), 4.0), max(pad * (max(ys) - min(ys)), 4.0)
        return min(xs) - dx, min(ys) - dy, max(xs) + dx, max(ys) + dy


@dataclass
class PoseSample:
    """One annotated image for training or validation: its file, size (as annotated) and instances."""

    id: str
    image: Path
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)
