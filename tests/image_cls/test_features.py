"""image_cls.Embedder with the real yolov8n weights: unit-length vectors that tell images apart, and a bad image
that costs only itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ultralytics

from detection.images import load_image
from image_cls import Embedder

ASSETS = Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="module")
def embedder(weights_dir):
    return Embedder.load(weights_dir / "yolov8n.pt", imgsz=320)


def test_features_are_unit_vectors_that_tell_images_apart(embedder):
    bus, zidane = load_image(ASSETS / "bus.jpg"), load_image(ASSETS / "zidane.jpg")
    v = embedder.features([bus, zidane, bus[:, ::-1]])
    assert v.shape == (3, 256) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[2] > v[0] @ v[1]  # the mirrored bus is nearer the bus than the football photo


def test_a_bad_image_gets_its_own_error(embedder):
    bus = load_image(ASSETS / "bus.jpg")
    out = embedder.features_or_errors([bus, np.zeros((0, 0, 3), dtype=np.uint8), bus])
    assert isinstance(out[1], Exception)
    assert np.allclose(out[0], out[2]) and out[0].shape == (256,)
