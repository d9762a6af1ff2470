"""The base models of a process: loaded once each, at most a few at a time."""
from __future__ import annotations

from pathlib import Path

from detection.pool import DetectorPool


def test_loaded_base_models_are_bounded(tmp_path, weights_dir):
    pool = DetectorPool(weights_dir, tmp_path / "models", size=2)
    first = pool.get(pool.resolve("yolov8n.pt", "detect"))
    assert pool.get(pool.resolve("yolov8n.pt", "detect")) is first  # loaded once
    for name in ("yolov8n_int8.onnx", "yolov8n-seg.pt"):
        pool.get(pool.resolve(name, "detect"), None)
    assert [Path(w).name for w in pool.loaded] == ["yolov8n_int8.onnx", "yolov8n-seg.pt"]
