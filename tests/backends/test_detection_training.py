"""Retraining the detection backend on annotations in Label Studio's format: coco128 images with their vehicles
relabelled as one class the COCO model does not have, the publish guard, and serving the new version."""
from __future__ import annotations

from pathlib import Path

import pytest

from backends.adapters.detection import DetectionAdapter
from backends.base import LabeledTask
from backends.config import Settings
from backends.media import MediaFetcher

pytestmark = pytest.mark.slow

CONFIG = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.05">
    <Label value="Person"/><Label value="Vehicle"/>
  </RectangleLabels></View>"""
VEHICLES = {2, 3, 5, 7}  # COCO car, motorcycle, bus, truck


def coco128_tasks(datasets_dir: Path, limit: int) -> list[LabeledTask]:
    """coco128 images whose YOLO labels become Label Studio rectangles: person -> Person, vehicles -> Vehicle."""
    root = datasets_dir / "coco128"
    out = []
    for i, image in enumerate(sorted((root / "images" / "train2017").glob("*.jpg"))[:limit]):
        label_file = root / "labels" / "train2017" / (image.stem + ".txt")
        result = []
        lines = label_file.read_text().split("\n") if label_file.exists() else []
        for line in filter(None, lines):
            c, xc, yc, w, h = line.split()
            c = int(c)
            label = "Person" if c == 0 else "Vehicle" if c in VEHICLES else None
            if label is None:
                continue
            xc, yc, w, h = (float(v) * 100 for v in (xc, yc, w, h))
            result.append({"from_name": "label", "to_name": "image", "type": "rectanglelabels",
                           "value": {"x": xc - w / 2, "y": yc - h / 2, "width": w, "height": h, "rotation": 0,
                                     "rectanglelabels": [label]}})
        out.append(LabeledTask(task_id=i + 1, data={"image": str(image)}, result=result, annotation_id=i + 1))
    return out


@pytest.fixture
def backend(tmp_path, weights_dir, datasets_dir):
    settings = Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                        local_roots=(datasets_dir,))
    return DetectionAdapter(settings), MediaFetcher(settings)


def test_fine_tuning_learns_a_new_class_and_the_guard_keeps_a_worse_model_out(backend, datasets_dir, tmp_path):
    adapter, media = backend
    examples = coco128_tasks(datasets_dir, 64)
    # a label the config no longer has: skipped and counted, not a crash
    examples[0].result.append({"from_name": "label", "to_name": "image", "type": "rectanglelabels",
                               "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["Lorry"]}})
    base = adapter.load_model(None)
    params = {"epochs": 6, "imgsz": 320, "batch": 16, "patience": 0, "val_fraction": 0.25}
    result = adapter.fit(examples, CONFIG, base, tmp_path / "v1", params=params, media=media)
    m = result.metrics
    print("fine-tuned", {k: v for k, v in m["label"].items() if k != "per_class"}, m["label"]["per_class"])
    assert m["unknown_labels"] == {"Lorry": 1}
    assert m["label"]["classes"] == ["person", "Vehicle"] and m["label"]["new_classes"] == ["Vehicle"]
    assert m["label"]["val_images"] >= 10
    vehicle = m["label"]["per_class"]["Vehicle"]["map50"]
    # the COCO model has no "Vehicle": on held-out images it scores 0 for it, the fine-tuned model clearly more
    assert vehicle > 0.15, m
    assert m["map50"] > m["served_map50"] and result.publish, m
    assert not any(p.name in ("last.pt", "runs", "dataset") for p in (tmp_path / "v1").rglob("*"))

    # the new version serves Vehicle boxes
    trained = adapter.load_model(tmp_path / "v1")
    with_vehicles = [ex for ex in examples if any(r["value"]["rectanglelabels"] == ["Vehicle"] for r in ex.result)]
    tasks = [{"id": ex.task_id, "data": ex.data} for ex in with_vehicles[:8]]
    answers = adapter.predict(trained, tasks, CONFIG, media=media)
    labels = [r["value"]["rectanglelabels"][0] for a in answers for r in a.result]
    assert "Vehicle" in labels and "Person" in labels

    # a second run that must beat the served model by more than mAP can grow is kept out
    stricter = {**params, "epochs": 1, "min_map_gain": 1.0}
    result = adapter.fit(examples, CONFIG, trained, tmp_path / "v2", params=stricter, media=media)
    assert not result.publish and "below the served model's" in result.reason
    assert result.metrics["served_map50"] == pytest.approx(m["map50"], abs=0.02)
