"""A trained YOLO pose model behind one small interface: RGB images in, `Instance`s with named keypoints out."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)

import cv2
import numpy as np
from ultralytics import YOLO

from .types import Instance, Keypoint


class PoseModelError(RuntimeError):
    """The weights do not load, are not a pose model, or hold another number of keypoints than the labels."""


class PoseModel:
    """A pose model whose K keypoints are the config labels `labels`, in order."""

    def __init__(self, yolo: YOLO, labels: Sequence[str], weights: Path):
        self.yolo = yolo
        self.labels = list(labels)
        self.weights = Path(weights)
        self._lock = threading.Lock()  # an Ultralytics predictor is not safe to share between threads

    @classmethod
    def load(cls, weights: str | Path, labels: Sequence[str]) -> "PoseModel":
        """Raises `PoseModelError` when the weights do not load or do not fit the labels."""
        try:
            yolo = YOLO(str(weights), task="pose")
        except Exception as e:
            raise PoseModelError(f"{weights} does not load: {type(e).__name__}: {e}") from None
        shape = getattr(yolo.model, "kpt_shape", None)
        if yolo.task != "pose" or not shape:
            raise PoseModelError(f"{weights} is not a pose model")
        if int(shape[0]) != len(labels):
            raise PoseModelError(f"{weights} predicts {shape[0]} keypoints, not {len(labels)}")
        return cls(yolo, labels, Path(weights))

    def predict(self, images: Sequence[np.ndarray], conf: float = 0.25, imgsz: int | None = None,
                batch: int = 8) -> list[list[Instance]]:
        """The instances in each RGB uint8 image (H, W, 3), from `conf` up; every keypoint with its own score."""
        detection.runtime.keep_process_threads()
        kwargs = {"conf": conf, "verbose": False, **({"imgsz": imgsz} if imgsz else {})}
        # Ultralytics reads numpy images as OpenCV BGR
        bgr = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR) for im in images]
        out: list[list[Instance]] = []
        with self._lock:
            for start in range(0, len(bgr), max(1, batch)):
                out += [self._instances(r) for r in self.yolo.predict(bgr[start:start + batch], **kwargs)]
        return out

    def _instances(self, result) -> list[Instance]:
        if result.boxes is None or result.keypoints is None or not len(result.boxes):
            return []
        boxes = result.boxes.xyxy.cpu().numpy().astype(float)
        scores = result.boxes.conf.cpu().numpy().astype(float)
        xy = result.keypoints.xy.cpu().numpy().astype(float)
        kconf = result.keypoints.conf
        kconf = kconf.cpu().numpy().astype(float) if kconf is not None else np.ones(xy.shape[:2])
        out = []
        for box, score, pts, pc in zip(boxes, scores, xy, kconf):
            points = [Keypoint(lb, float(x), float(y), float(c)) for lb, (x, y), c in zip(self.labels, pts, pc)]
            out.append(Instance(points, float(score), tuple(float(v) for v in box)))
        return out
