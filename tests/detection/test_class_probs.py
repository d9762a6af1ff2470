"""Class probabilities of every kept box, read from the raw head output of real yolov8n weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ultralytics

from detection.class_probs import ClassProbsPredictor

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


@pytest.fixture(scope="module")
def yolo(weights_dir: Path):
    from ultralytics import YOLO

    path = weights_dir / "yolov8n.pt"
    if not path.exists():
        pytest.skip(f"no {path}")
    return YOLO(str(path))


def test_rows_line_up_with_the_boxes(yolo):
    r = yolo.predict(str(BUS), predictor=ClassProbsPredictor, conf=0.01, verbose=False)[0]
    probs, conf, cls = r.feats, r.boxes.conf.numpy(), r.boxes.cls.numpy().astype(int)
    assert len(conf) > 5 and probs.shape == (len(conf), len(yolo.names))
    assert np.allclose(probs.max(axis=1), conf, atol=1e-4) and (probs.argmax(axis=1) == cls).all()
    assert ((probs >= 0) & (probs <= 1)).all()
    # the same boxes as the stock predictor (a YOLO keeps the predictor it last got: a fresh one here)
    from ultralytics import YOLO

    plain = YOLO(yolo.ckpt_path).predict(str(BUS), conf=0.01, verbose=False)[0]
    assert np.allclose(plain.boxes.xyxy.numpy(), r.boxes.xyxy.numpy())


def test_class_selection_and_nothing_found(yolo):
    r = yolo.predict(str(BUS), predictor=ClassProbsPredictor, conf=0.01, classes=[5], verbose=False)[0]
    assert len(r.boxes) >= 1 and (r.feats.argmax(axis=1) == 5).all()  # rows still span all 80 classes
    blank = np.zeros((320, 320, 3), dtype=np.uint8)
    r = yolo.predict(blank, predictor=ClassProbsPredictor, conf=0.9, verbose=False)[0]
    assert len(r.boxes) == 0 and r.feats.shape == (0, len(yolo.names))
