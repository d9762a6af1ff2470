"""The ocr demo project: its config is one the ocr backend serves, examples/ocr.yaml is the same project, and its
images are rendered once (the first without text), each holding lines the reader finds."""
from __future__ import annotations

import numpy as np
from PIL import Image

from backends.adapters.ocr import OCRAdapter
from backends.config import Settings
from ocr.engine import get_reader
from ops import demo_data
from ops.demo_project import DEMOS
from scripts.labelloop_sync import config


def test_the_demo_config_and_the_example_are_served_by_the_ocr_backend(monkeypatch):
    monkeypatch.delenv("BACKEND_PASS", raising=False)
    backend = OCRAdapter(Settings())
    backend.check_config(DEMOS["ocr"].label_config)
    example = config.load("examples/ocr.yaml")
    assert example.title == DEMOS["ocr"].title and example.label_config == DEMOS["ocr"].label_config.strip()
    assert example.backends[0].url.endswith(":9096") and example.backends[0].auth is None  # the demo's: no auth
    monkeypatch.setenv("BACKEND_PASS", "s3cret")
    assert config.load("examples/ocr.yaml").backends[0].auth == ("label-studio", "s3cret")


def test_the_demo_images_are_rendered_once(tmp_path):
    assert "generated" in demo_data.text_images(tmp_path, 3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["text-000.png", "text-001.png", "text-002.png"]
    stamp = (tmp_path / "text-001.png").stat().st_mtime_ns
    demo_data.text_images(tmp_path, 2)  # again, fewer: the extra one goes, the others are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == names[:2]
    assert (tmp_path / "text-001.png").stat().st_mtime_ns == stamp
    reader = get_reader()
    assert reader.read(np.asarray(Image.open(tmp_path / "text-000.png").convert("RGB"))) == []
    assert len(reader.read(np.asarray(Image.open(tmp_path / "text-001.png").convert("RGB")))) >= 2
