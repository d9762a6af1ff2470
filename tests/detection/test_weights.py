"""Which YOLO weights a spec may load: allowed files of the weights folder, the backend's own trained versions,
never a file that merely lies in a root, never a download for a name that is not there."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from detection.trained import MANIFEST, TrainedModelError, is_trained_weights, read_manifest, write_manifest
from detection.weights import DEFAULT_ALLOWED, WeightsError, is_allowed, resolve_weights


@pytest.fixture
def roots(tmp_path):
    weights, models, outside = tmp_path / "weights", tmp_path / "models", tmp_path / "outside"
    for d in (weights / "sub", models / "detection" / "1" / "v1" / "control-0", outside):
        d.mkdir(parents=True)
    for name in ("yolov8n.pt", "yolov8n_int8.onnx", "custom.pt", "sub/yolov8s.pt"):
        (weights / name).write_bytes(b"0")
    (outside / "evil.pt").write_bytes(b"0")
    version = models / "detection" / "1" / "v1"
    (version / "control-0" / "weights.pt").write_bytes(b"0")
    write_manifest(version, {"label": {"weights": "control-0/weights.pt", "task": "detect", "classes": ["a"]}})
    (models / "detection" / "1" / "planted.pt").write_bytes(b"0")
    return weights, models, outside


def _resolve(spec, roots, allowed=DEFAULT_ALLOWED, task="detect"):
    weights, models, _ = roots
    return resolve_weights(spec, task, weights, allowed, written=lambda p: is_trained_weights(p, models))


def test_allowed_names_and_defaults(roots):
    weights = roots[0]
    assert _resolve(None, roots) == str(weights / "yolov8n.pt")
    assert _resolve("yolov8n_int8.onnx", roots) == str(weights / "yolov8n_int8.onnx")
    # the default of a task that is not on disk: the backend's own choice, left to Ultralytics
    assert _resolve(None, roots, task="segment") == "yolov8n-seg.pt"
    with pytest.raises(WeightsError, match="not among the allowed weights"):
        _resolve("custom.pt", roots)  # present, but not Ultralytics-named and not listed by the operator
    assert _resolve("custom.pt", roots, allowed=("custom.pt",)) == str(weights / "custom.pt")
    # a pattern without "/" is for the top of the folder only
    with pytest.raises(WeightsError, match="not among the allowed"):
        _resolve("sub/yolov8s.pt", roots)
    assert _resolve("sub/yolov8s.pt", roots, allowed=("sub/*.pt",)) == str(weights / "sub" / "yolov8s.pt")


def test_a_missing_name_is_never_downloaded(roots):
    with pytest.raises(WeightsError, match="never downloaded"):
        _resolve("yolov8x.pt", roots)
    with pytest.raises(WeightsError, match="not a YOLO weights file"):
        _resolve("passwd", roots)


def test_only_the_backends_own_versions_load_from_the_model_folder(roots):
    _, models, outside = roots
    version = models / "detection" / "1" / "v1"
    assert _resolve(str(version / "control-0" / "weights.pt"), roots) == str(version / "control-0" / "weights.pt")
    for planted in (models / "detection" / "1" / "planted.pt", outside / "evil.pt", version / MANIFEST):
        with pytest.raises(WeightsError, match="outside the model roots"):
            _resolve(str(planted), roots)
    # a file put into a version folder is not one training wrote
    (version / "control-0" / "other.pt").write_bytes(b"0")
    with pytest.raises(WeightsError, match="outside the model roots"):
        _resolve(str(version / "control-0" / "other.pt"), roots)
    with pytest.raises(WeightsError, match="outside the model roots"):
        _resolve("../outside/evil.pt", roots)


def test_symlinks_are_resolved_before_the_check(roots):
    weights, models, outside = roots
    os.symlink(outside, weights / "linked")  # the literal path is inside the weights folder
    with pytest.raises(WeightsError, match="outside the model roots"):
        _resolve("linked/evil.pt", roots, allowed=("*",))
    os.symlink(outside / "evil.pt", models / "detection" / "1" / "v1" / "control-0" / "weights2.pt")
    with pytest.raises(WeightsError, match="outside the model roots"):
        _resolve(str(models / "detection" / "1" / "v1" / "control-0" / "weights2.pt"), roots)


def test_a_manifest_cannot_point_out_of_its_folder(roots):
    _, models, outside = roots
    version = models / "detection" / "1" / "v2"
    version.mkdir()
    write_manifest(version, {"label": {"weights": "../../../../outside/evil.pt", "task": "detect"}})
    with pytest.raises(TrainedModelError, match="outside its folder"):
        read_manifest(version)
    assert not is_trained_weights((outside / "evil.pt").resolve(), models)
    assert not is_trained_weights(Path("/etc/passwd"), models)


def test_is_allowed_patterns():
    assert is_allowed("yolo11n-seg.pt", DEFAULT_ALLOWED) and is_allowed("yolov8n_openvino_model", DEFAULT_ALLOWED)
    assert not is_allowed("mobile_sam.pt", DEFAULT_ALLOWED) and not is_allowed("a/yolov8n.pt", DEFAULT_ALLOWED)
