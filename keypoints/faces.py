"""Faces and their 68 landmarks with dlib: its HOG frontal face detector and the shape predictor whose weights
the `face-recognition-models` package carries (shape_predictor_68_face_landmarks.dat).

The package's own `__init__` imports `pkg_resources`, which recent setuptools no longer ship, so the weights are
found through the package's folder without importing it.
"""
from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .landmarks import N_LANDMARKS

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
UPSAMPLE = 1  # the detector's own default in face_recognition: finds faces down to about 40 px
# faces are looked for on the image scaled down to this long side (then upsampled once): a 12 MP photo upsampled
# would take dlib tens of seconds and gigabytes; the landmarks are then placed on the full image
DETECT_SIDE = 1280


class FaceModelError(RuntimeError):
    """dlib or the landmark weights are not installed or do not load."""


@dataclass
class Face:
    """One face: its box and detector confidence, and its 68 landmarks (68, 2) in pixels."""

    xyxy: tuple[float, float, float, float]
    score: float
    points: np.ndarray

    def point(self, indices: Sequence[int]) -> tuple[float, float]:
        """The mean of the landmarks at `indices`."""
        x, y = self.points[list(indices)].mean(axis=0)
        return float(x), float(y)


def predictor_path() -> Path:
    """The 68-landmark weights of the installed `face-recognition-models`.

    Raises:
        FaceModelError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise FaceModelError(f"{PREDICTOR_FILE} not found: pip install face-recognition-models (requirements.txt)")


def confidence(margin: float) -> float:
    """The detector's SVM margin as a confidence in (0, 1): a logistic, 0.5 at dlib's own threshold (margin 0).
    Monotone, not calibrated: it orders faces and tasks."""
    return 1.0 / (1.0 + math.exp(-2.0 * float(margin)))


class FaceLandmarker:
    """dlib's face detector and 68-point shape predictor, loaded once; dlib's objects are not thread safe, so
    calls are serialised."""

    def __init__(self, detector, predictor):
        self._detector = detector
        self._predictor = predictor
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> "FaceLandmarker":
        """Raises `FaceModelError` when dlib or the weights are missing or do not load."""
        try:
            import dlib
        except ImportError as e:
            raise FaceModelError(f"dlib is not installed (pip install dlib-bin): {e}") from None
        path = predictor_path()
        try:
            return cls(dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)))
        except RuntimeError as e:
            raise FaceModelError(f"{path} does not load: {e}") from None

    def faces(self, image: np.ndarray, threshold: float = 0.5) -> list[Face]:
        """The faces of an RGB uint8 image (H, W, 3) whose confidence is at least `threshold`, most confident
        first."""
        import dlib

        image = np.ascontiguousarray(image, dtype=np.uint8)
        scale = min(1.0, DETECT_SIDE / max(image.shape[:2]))
        small = image if scale == 1.0 else cv2.resize(image, (round(image.shape[1] * scale),
                                                              round(image.shape[0] * scale)),
                                                      interpolation=cv2.INTER_AREA)
        # dlib reports candidates down to this margin; faces below the threshold's margin are not kept
        floor = -0.5 * math.log(1.0 / min(max(threshold, 1e-6), 1 - 1e-6) - 1.0)
        with self._lock:
            found, margins, _ = self._detector.run(small, UPSAMPLE, floor)
            rects = [r if scale == 1.0 else dlib.rectangle(round(r.left() / scale), round(r.top() / scale),
                                                           round(r.right() / scale), round(r.bottom() / scale))
                     for r in found]
            shapes = [self._predictor(image, r) for r in rects]
        out = []
        for rect, margin, shape in zip(rects, margins, shapes):
            if confidence(margin) < threshold:
                continue
            points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(N_LANDMARKS)], dtype=np.float64)
            out.append(Face((float(rect.left()), float(rect.top()), float(rect.right() + 1),
                             float(rect.bottom() + 1)), confidence(margin), points))
        return sorted(out, key=lambda f: -f.score)
