"""What the backends write is what the model found: the served boxes and masks of one image against Ultralytics
called directly with the same weights, confidence and (default) inference size (issue 16's fidelity; the measured
stages on 32 coco128 images are bench/fidelity_bench.py's)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ultralytics
from ultralytics import YOLO
from ultralytics.utils import ops

from backends.app import create_app
from backends.config import Settings
from backends.regions import polygon_pixels, rect_corners, rle_to_mask
from backends.regions_writers import DEFAULT_THRESHOLD
from segmentation.masks import polygon_mask
from tests.backends.protocol import predict

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"  # 810x1080: letterboxed to 480x640 at imgsz 640
W, H = 810, 1080
LABELS = ("person", "bus")


def _config(tag: str) -> str:
    labels = "".join(f'<Label value="{c}"/>' for c in LABELS)
    return f'<View><Image name="image" value="$image"/><{tag} name="out" toName="image">{labels}</{tag}></View>'


def _served(task: str, tag: str, tmp_path, weights_dir) -> list[dict]:
    # float32: the served path must add nothing to the model's own output (the default bf16 moves scores by up to
    # 0.04 at the same AP50: bench/results/fidelity.json, compare.json)
    settings = Settings(model_dir=tmp_path / "models", weights_dir=weights_dir, media_cache_dir=tmp_path / "media",
                        local_roots=(BUS.parent,), detection_precision="f32")
    client = create_app(task, settings).test_client()
    [answer] = predict(client, [{"id": 1, "data": {"image": str(BUS)}}], _config(tag), "3.1700000000")["results"]
    return answer["result"]


def _raw(weights: Path):
    """Ultralytics' own result at its defaults (imgsz 640) and the writers' default threshold."""
    yolo = YOLO(str(weights))
    classes = [k for k, v in yolo.names.items() if v in LABELS]
    return yolo.predict(str(BUS), conf=DEFAULT_THRESHOLD, classes=classes, verbose=False)[0]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_served_boxes_are_the_models_boxes(tmp_path, weights_dir):
    raw = _raw(weights_dir / "yolov8n.pt")
    items = _served("detection", "RectangleLabels", tmp_path, weights_dir)
    assert len(items) == len(raw.boxes) >= 5
    served = sorted(((i["value"]["rectanglelabels"][0], i["score"], rect_corners(i["value"], W, H)) for i in items),
                    key=lambda s: -s[1])
    for (label, score, corners), box, conf, cls in zip(served, raw.boxes.xyxy.tolist(), raw.boxes.conf.tolist(),
                                                       raw.boxes.cls.tolist()):
        assert label == raw.names[int(cls)] and score == pytest.approx(conf, abs=5e-5)
        np.testing.assert_allclose([*corners.min(axis=0), *corners.max(axis=0)], box, atol=1e-3)


@pytest.mark.parametrize("tag", ["BrushLabels", "PolygonLabels"])
def test_served_masks_are_the_models_masks_at_its_size(tag, tmp_path, weights_dir):
    """Served at another inference size (320: other scores, six objects instead of five) the masks are not found
    here; outlined as the polygon writer did before (0.5 % of the perimeter, at most 64 points) they kept IoU
    0.87-0.96 of the raw masks."""
    raw = _raw(weights_dir / "yolov8n-seg.pt")
    masks = (ops.scale_masks(raw.masks.data[None].float(), raw.orig_shape)[0] > 0.5).cpu().numpy()
    items = _served("segmentation", tag, tmp_path, weights_dir)
    assert len(items) == len(raw.boxes) >= 5
    kind = tag.lower()
    served = {}
    for i in items:
        value = i["value"]
        mask = rle_to_mask(value["rle"], W, H) if kind == "brushlabels" else \
            polygon_mask(polygon_pixels(value, W, H), W, H)
        served[(value[kind][0], i["score"])] = mask
    ious = []
    for mask, conf, cls in zip(masks, raw.boxes.conf.tolist(), raw.boxes.cls.tolist()):
        key = (raw.names[int(cls)], round(conf, 4))
        assert key in served, f"{key} not served"
        ious.append(_iou(served[key], mask))
    # the model's mask at 480x640, outlined and filled at 810x1080, against its bilinear upscaling: 0.97-0.99
    assert min(ious) >= 0.965 and np.mean(ious) >= 0.98, ious
