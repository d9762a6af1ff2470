"""The engine that serves a box model (detection.engines): the choice, the cached OpenVINO export, and that the export
predicts what PyTorch predicts (boxes, scores, class probabilities) with embeddings still PyTorch's.

One real export of yolov8n.pt per test session (~5-15 s), into a session folder; every test that loads it again
reads that folder.
"""
from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.config import DETECTION_ENGINES, DETECTION_PRECISIONS, Settings
from detection import engines
from detection.engines import Serving
from detection.images import load_image
from detection.model import Detector

pytestmark = pytest.mark.skipif(not engines.openvino_available(), reason="openvino is not installed")


@pytest.fixture(scope="session")
def yolov8n(weights_dir: Path) -> Path:
    path = weights_dir / "yolov8n.pt"
    if not path.is_file():
        pytest.skip(f"no {path}")
    return path


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("openvino-exports")


@pytest.fixture(scope="session")
def served(yolov8n: Path, export_dir: Path) -> Detector:
    detector = Detector.load(yolov8n, serving=Serving(engine="openvino", export_dir=export_dir))
    assert detector.engine == "openvino", "the export failed: see the warning logged"
    return detector


@pytest.fixture(scope="session")
def reference(yolov8n: Path) -> Detector:
    return Detector.load(yolov8n)


@pytest.fixture(scope="session")
def photos(datasets_dir: Path) -> list[np.ndarray]:
    paths = sorted((datasets_dir / "coco128" / "images" / "train2017").glob("*.jpg"))[:4]
    return [load_image(p) for p in paths]


def test_engine_choice(monkeypatch) -> None:
    monkeypatch.setattr(engines, "openvino_available", lambda: True)
    assert engines.choose_engine("auto", "w/yolov8n.pt", "detect", gpu=False) == "openvino"
    assert engines.choose_engine("", "w/yolov8n.pt", "detect", gpu=False) == "openvino"  # empty: auto
    assert engines.choose_engine("auto", "w/yolov8n.pt", "detect", gpu=True) == "pytorch"
    assert engines.choose_engine("openvino", "w/yolov8n.pt", "detect", gpu=True) == "openvino"  # asked for
    assert engines.choose_engine("pytorch", "w/yolov8n.pt", "detect", gpu=False) == "pytorch"
    # masks were never measured equal; an export already runs in its own engine
    assert engines.choose_engine("auto", "w/yolov8n-seg.pt", "segment", gpu=False) == "pytorch"
    assert engines.choose_engine("openvino", "w/yolov8n.onnx", "detect", gpu=False) == "pytorch"
    with pytest.raises(ValueError, match="auto, pytorch, openvino"):
        engines.check_engine("tensorrt")


def test_the_setting_names_the_variable_and_agrees_with_the_package() -> None:
    assert DETECTION_ENGINES == engines.ENGINES
    assert Settings().detection_engine == "auto" and Settings.from_env({}).detection_engine == "auto"
    assert Settings.from_env({"DETECTION_ENGINE": " PyTorch "}).detection_engine == "pytorch"
    assert Settings.from_env({"DETECTION_EXPORT_DIR": "/x/y"}).detection_export_dir == Path("/x/y")
    with pytest.raises(ValueError, match="DETECTION_ENGINE must be one of auto, pytorch, openvino; got 'onnx'"):
        Settings.from_env({"DETECTION_ENGINE": "onnx"})
    assert DETECTION_PRECISIONS == engines.PRECISIONS
    assert Settings().detection_precision == "bf16" and Settings.from_env({}).detection_precision == "bf16"
    assert Settings.from_env({"DETECTION_PRECISION": "F32"}).detection_precision == "f32"
    with pytest.raises(ValueError, match="DETECTION_PRECISION must be one of f32, bf16; got 'int8'"):
        Settings.from_env({"DETECTION_PRECISION": "int8"})
    with pytest.raises(ValueError, match="f32, bf16"):
        Detector.load("yolov8n.pt", serving=Serving(precision="fp16"))


def test_without_openvino_auto_serves_pytorch(yolov8n: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    monkeypatch.setattr(engines, "_warned", set())
    assert not engines.openvino_available()
    detector = Detector.load(yolov8n, serving=Serving(engine="auto", export_dir=tmp_path))
    assert detector.engine == "pytorch" and not any(tmp_path.iterdir())
    with caplog.at_level(logging.WARNING, logger="detection.engines"):
        assert Detector.load(yolov8n, serving=Serving(engine="openvino", export_dir=tmp_path)).engine == "pytorch"
    assert "openvino package does not import" in caplog.text  # asked for by name: said why not


def test_a_failed_export_serves_pytorch_and_warns_once(yolov8n: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    def broken(weights, cache_dir):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(engines, "export_openvino", broken)
    monkeypatch.setattr(engines, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="detection.engines"):
        first = Detector.load(yolov8n, serving=Serving(engine="auto", export_dir=tmp_path))
        second = Detector.load(yolov8n, serving=Serving(engine="auto", export_dir=tmp_path))
    assert first.engine == second.engine == "pytorch"
    assert len(first.predict([np.zeros((64, 64, 3), dtype=np.uint8)])) == 1
    warnings = [r for r in caplog.records if "OpenVINO export failed" in r.getMessage()]
    assert len(warnings) == 1 and "converter crashed" in warnings[0].getMessage()


def test_the_export_is_cached_by_content(served: Detector, yolov8n: Path, export_dir: Path, tmp_path: Path,
                                          monkeypatch) -> None:
    [folder] = [p for p in export_dir.iterdir() if p.name.endswith(engines.OPENVINO_SUFFIX)]
    assert folder == engines.export_path(yolov8n, export_dir) and any(folder.glob("*.xml"))
    mtime = folder.stat().st_mtime_ns
    from ultralytics import YOLO

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(YOLO, "export", no_export)
    again = Detector.load(yolov8n, serving=Serving(engine="auto", export_dir=export_dir))
    assert again.engine == "openvino" and folder.stat().st_mtime_ns == mtime
    # the same bytes elsewhere (a trained version published by copying) find the same export, ahead of a load
    copy = tmp_path / "weights.pt"
    shutil.copyfile(yolov8n, copy)
    assert engines.prepare_export(copy, "detect", Serving("auto", export_dir)) == folder
    assert engines.prepare_export(copy, "segment", Serving("auto", export_dir)) is None
    assert engines.prepare_export(copy, "detect", Serving("pytorch", export_dir)) is None
    # a new recipe (or library version) is a new folder, never the old export
    monkeypatch.setattr(engines, "RECIPE", engines.RECIPE + " changed")
    assert engines.export_path(yolov8n, export_dir) != folder


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_openvino_finds_what_pytorch_finds(served: Detector, reference: Detector, photos: list) -> None:
    ov_found, pt_found = served.predict(photos, conf=0.1), reference.predict(photos, conf=0.1)
    assert sum(map(len, pt_found)) >= 10
    for ov, pt in zip(ov_found, pt_found):
        assert len(ov) == len(pt)
        for want in pt:
            match = max(ov, key=lambda d: _iou(d.xyxy, want.xyxy))
            assert _iou(match.xyxy, want.xyxy) >= 0.95 and match.cls == want.cls
            assert match.score == pytest.approx(want.score, abs=1e-3)  # float32 on both: float noise only
            assert match.class_probs is not None and match.class_probs.shape == want.class_probs.shape
            assert np.allclose(match.class_probs, want.class_probs, atol=1e-3)
            assert match.class_probs.max() == pytest.approx(match.score, abs=1e-6)


def test_class_subsets_and_embeddings(served: Detector, reference: Detector, photos: list) -> None:
    [ov], [pt] = served.predict(photos[:1], classes=["bowl", "broccoli"]), reference.predict(
        photos[:1], classes=["bowl", "broccoli"])
    assert {d.cls for d in ov} <= {"bowl", "broccoli"} and len(ov) == len(pt)
    assert all(d.class_probs.shape == (2,) for d in ov)
    vectors = served.embed(photos[:2])  # an export has no layers to pool: the .pt does it
    assert vectors.shape == (2, 256) and np.allclose(vectors, reference.embed(photos[:2]), atol=1e-5)


def test_openvino_compiles_with_the_process_budget_in_float32(yolov8n: Path, export_dir: Path, served: Detector,
                                                               monkeypatch) -> None:
    import openvino as ov
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        detector = Detector.load(yolov8n, serving=Serving(engine="openvino", export_dir=export_dir))
    finally:
        torch.set_num_threads(threads)
    compiled = detector.yolo.predictor.model.backend.ov_compiled_model
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def _fake_fit(verdicts: list[str]):
    """`fit_controls` of one trained control whose weights are a copy of yolov8n.pt, published unless `verdicts`."""
    from backends.regions_finetune import RegionsFit

    def fit(pool, writers, examples, parent, out_dir, *args, **kwargs):
        shutil.copyfile(Path(pool.resolve("yolov8n.pt", "detect")), Path(out_dir) / "weights.pt")
        scores = {"map50": 0.5, "map50_95": 0.3, "served_map50": 0.4, "served_map50_95": 0.2}
        return RegionsFit(manifest={"label": {"task": "detect", "classes": ["person"], "weights": "weights.pt"}},
                          trained=["label"], metrics={"label": scores}, verdicts=verdicts, images=4)

    return fit


@pytest.mark.parametrize("published", [True, False])
def test_training_exports_a_version_it_publishes(published: bool, yolov8n: Path, weights_dir: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    from backends.adapters import detection as adapter_module

    made = []
    monkeypatch.setattr(adapter_module, "fit_controls", _fake_fit([] if published else ["worse"]))
    monkeypatch.setattr(adapter_module, "prepare_export", lambda *args: made.append(args))
    settings = Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                        detection_export_dir=tmp_path / "exports")
    adapter = adapter_module.DetectionAdapter(settings)
    config = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
              '<Label value="person"/></RectangleLabels></View>')
    (tmp_path / "v1").mkdir()
    result = adapter.fit([], config, None, tmp_path / "v1")
    assert result.publish is published
    assert made == ([(tmp_path / "v1" / "weights.pt", "detect", Serving("auto", tmp_path / "exports", "bf16"))]
                    if published else [])


def test_bfloat16_is_asked_for_and_stays_close(yolov8n: Path, export_dir: Path, served: Detector, reference: Detector,
                                              photos: list) -> None:
    import openvino as ov

    fast = Detector.load(yolov8n, serving=Serving(engine="openvino", export_dir=export_dir, precision="bf16"))
    compiled = fast.yolo.predictor.model.backend.ov_compiled_model
    has_bf16 = any(flag in Path("/proc/cpuinfo").read_text() for flag in ("avx512_bf16", "amx_bf16"))
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == (ov.Type.bf16 if has_bf16 else ov.Type.f32)
    # the confident boxes survive bfloat16 (it moved scores by up to 0.04 on coco128)
    for bf, pt in zip(fast.predict(photos, conf=0.1), reference.predict(photos, conf=0.1)):
        for want in (d for d in pt if d.score >= 0.5):
            match = max(bf, key=lambda d: _iou(d.xyxy, want.xyxy))
            assert _iou(match.xyxy, want.xyxy) >= 0.9 and match.cls == want.cls
            assert match.score == pytest.approx(want.score, abs=0.06)
