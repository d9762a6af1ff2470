"""Blur faces in images before annotators see them, with the Haar cascades that ship with OpenCV (no download).

Haar cascades find frontal and profile faces of reasonable size and light; they miss small, turned or occluded
faces, so this is a privacy aid, not a guarantee.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import SyncError

CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")


@lru_cache(maxsize=1)
def _detectors() -> list:
    import cv2

    out = []
    for name in CASCADES:
        detector = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
        if detector.empty():
            raise SyncError(f"OpenCV's face cascade {name} is missing from {cv2.data.haarcascades}")
        out.append(detector)
    return out


def detect_faces(image: np.ndarray, min_size: int = 24) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in a BGR or grayscale image."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = cv2.equalizeHist(gray)
    boxes: list[tuple[int, int, int, int]] = []
    for detector in _detectors():
        found = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
        boxes.extend(tuple(int(v) for v in box) for box in (found if len(found) else []))
    return boxes


def blur_faces(image: np.ndarray) -> tuple[np.ndarray, int]:
    """A copy of `image` with every detected face (plus a margin) blurred beyond recognition, and the count."""
    import cv2

    out = image.copy()
    h_img, w_img = out.shape[:2]
    boxes = detect_faces(out)
    for x, y, w, h in boxes:
        # the cascade's box is tight around eyes and mouth: widen it so hair line and chin go too
        pad_w, pad_h = int(w * 0.2), int(h * 0.25)
        x0, y0 = max(0, x - pad_w), max(0, y - pad_h)
        x1, y1 = min(w_img, x + w + pad_w), min(h_img, y + h + pad_h)
        roi = out[y0:y1, x0:x1]
        k = max(31, (max(x1 - x0, y1 - y0) // 2) | 1)
        out[y0:y1, x0:x1] = cv2.GaussianBlur(roi, (k, k), 0)
    return out, len(boxes)


def blur_file_bytes(data: bytes, suffix: str) -> tuple[bytes, int]:
    """The image file `data` with faces blurred, re-encoded in the same format, and the number of faces."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SyncError(f"cannot decode a {suffix} image for --blur-faces")
    blurred, n = blur_faces(image)
    if n == 0:
        return data, 0  # untouched bytes: no re-encoding loss for images without faces
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix.lower(), blurred, params)
    if not ok:
        raise SyncError(f"cannot re-encode a {suffix} image after blurring faces")
    return buf.tobytes(), n
