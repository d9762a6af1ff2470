"""The segmentation backend learns a project's own class from submitted brush masks and polygons, without SAM
weights: YOLO-seg (the real yolov8n-seg.pt) fine-tuned on synthetic images of a "Widget" (a magenta triangle on a
noisy background, a shape no COCO class describes), judged by validation mask mAP against the served model; the
published version serves Widget masks, the base model the labels it was not trained on."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import ultralytics
from PIL import Image

from backends.adapters.segmentation import SegmentationAdapter, _controls
from backends.base import LabeledTask
from backends.config import Settings
from backends.exceptions import BadRequest, NotEnoughData
from backends.media import MediaFetcher
from backends.regions import mask_to_rle, points_to_polygon_value, rle_to_mask
from backends.regions_finetune import fit_controls
from detection.guard import Guard
from detection.trained import load_trained, write_manifest

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"  # people: COCO's "person"
CONFIG = """<View><Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image" model_score_threshold="0.1">
    <Label value="Widget"/><Label value="Person"/></BrushLabels>
  <PolygonLabels name="outline" toName="image"><Label value="Widget"/></PolygonLabels></View>"""
SIDE = 160
# lean training (~40 s on 2 CPU cores; mask mAP50 0.93 measured): batch 1 for enough steps after the warm-up
PARAMS = {"epochs": 7, "imgsz": SIDE, "batch": 1, "patience": 0, "val_fraction": 0.25, "freeze": 10, "lr0": 0.004,
          "min_train_images": 4}


def widget_image(rng: np.random.Generator, path: Path) -> list[np.ndarray]:
    """A noisy grey image with one or two magenta triangles; their outlines in pixels."""
    image = rng.integers(60, 140, (SIDE, SIDE, 3), dtype=np.uint8)
    outlines = []
    for _ in range(rng.integers(1, 3)):
        size = rng.integers(36, 60)
        x, y = rng.integers(4, SIDE - size - 4, 2)
        tri = np.array([[x, y + size], [x + size // 2, y], [x + size, y + size]], dtype=np.int32)
        if any(cv2.pointPolygonTest(o.astype(np.float32), (float(px), float(py)), False) >= 0
               for o in outlines for px, py in tri):
            continue
        cv2.fillPoly(image, [tri.reshape(-1, 1, 2)], (230, 40, 220))
        outlines.append(tri.astype(float))
    Image.fromarray(image).save(path)
    return outlines


def widget_tasks(folder: Path, n: int, seed: int = 0, polygons: int = 0) -> list[LabeledTask]:
    """`n` images of widgets annotated as brush masks, the first `polygons` of them as polygons instead."""
    rng, tasks = np.random.default_rng(seed), []
    for i in range(n):
        path = folder / f"widget{seed}_{i}.png"
        result = []
        for outline in widget_image(rng, path):
            if i < polygons:
                value = {**points_to_polygon_value(outline, SIDE, SIDE), "polygonlabels": ["Widget"]}
                result.append({"from_name": "outline", "to_name": "image", "type": "polygonlabels", "value": value})
                continue
            mask = np.zeros((SIDE, SIDE), np.uint8)
            cv2.fillPoly(mask, [outline.astype(np.int32).reshape(-1, 1, 2)], 1)
            result.append({"from_name": "mask", "to_name": "image", "type": "brushlabels",
                           "value": {"format": "rle", "rle": mask_to_rle(mask.astype(bool)),
                                     "brushlabels": ["Widget"]}})
        tasks.append(LabeledTask(task_id=i + 1, data={"image": str(path)}, result=result, annotation_id=i + 1))
    return tasks


@pytest.fixture(scope="module")
def trained(tmp_path_factory, weights_dir):
    """A backend without SAM weights, its training examples, and the version it trained (v1)."""
    root = tmp_path_factory.mktemp("segtrain")
    (root / "images").mkdir()
    settings = Settings(model_dir=root / "models", weights_dir=weights_dir, media_cache_dir=root / "media",
                        local_roots=(root, BUS.parent))
    backend = SegmentationAdapter(settings)
    # 3 polygon images: too few for the outline control's own model (left as served, the metrics say why)
    examples = widget_tasks(root / "images", 19, polygons=3)
    result = backend.fit(examples, CONFIG, backend.load_model(None), root / "models" / "v1", PARAMS,
                         MediaFetcher(settings))
    return backend, settings, examples, result, root


def test_submitted_masks_of_a_new_label_train_a_version_without_sam(trained):
    backend, _, _, result, root = trained
    m = result.metrics
    print({k: v for k, v in m["mask"].items() if "per_class" not in k})
    assert "no SAM weights" in m["sam"] and "val_miou_after" not in m  # the YOLO-seg part alone
    assert m["mask"]["classes"] == ["Widget"] and m["mask"]["new_classes"] == ["Widget"]
    assert m["mask"]["guard_metric"] == "mask_map50_95"
    # the base model has no Widget: its mask mAP is 0, the candidate's clearly more
    assert m["served_mask_map50"] == 0 and m["mask_map50"] > 0.3, m
    assert {"mask_map50_95", "served_mask_map50_95", "map50", "map50_95"} <= set(m)
    assert result.publish and not result.reason
    manifest = json.loads((root / "models" / "v1" / "detection.json").read_text())
    assert manifest["controls"]["mask"]["task"] == "segment"
    assert set(manifest["controls"]) == {"mask"} and "3 annotated images, need 4" in m["outline"]["skipped"]
    assert not (root / "models" / "v1" / "mask_decoder.pt").exists()


def test_the_published_version_gives_widget_masks_and_base_labels_still_come(trained):
    backend, settings, _, _, root = trained
    served = backend.load_model(root / "models" / "v1")
    assert backend.load_model(None).yolo.controls == {}
    fresh = widget_tasks(root / "images", 3, seed=7)  # unseen images
    tasks = [{"id": ex.task_id, "data": ex.data} for ex in fresh]
    media = MediaFetcher(settings)
    answers = backend.predict(served, tasks, CONFIG, media=media)
    best = []  # per submitted widget, the IoU of the predicted mask that overlaps it most
    for ex, answer in zip(fresh, answers):
        found = [rle_to_mask(r["value"]["rle"], SIDE, SIDE) for r in answer.result
                 if r["value"]["brushlabels"] == ["Widget"]]  # the base model may see a Person in the noise
        for truth in (rle_to_mask(r["value"]["rle"], SIDE, SIDE) for r in ex.result):
            best.append(max((m & truth).sum() / (m | truth).sum() for m in found))
    print("best IoU per widget", np.round(best, 2))
    assert min(best) > 0.5, best
    # the base model before: no Widget at all; after: Person (never trained) still from the base model
    before = backend.predict(backend.load_model(None), tasks, CONFIG, media=media)
    assert not [r for a in before for r in a.result if r["value"]["brushlabels"] == ["Widget"]]
    [bus] = backend.predict(served, [{"id": 9, "data": {"image": str(BUS)}}], CONFIG, media=media)
    assert "Person" in {r["value"]["brushlabels"][0] for r in bus.result if r["type"] == "brushlabels"}


def test_a_candidate_not_better_than_the_served_is_rejected(trained):
    backend, settings, examples, first, root = trained
    served = backend.load_model(root / "models" / "v1")
    stricter = {**PARAMS, "epochs": 1, "min_map_gain": 1.0}
    result = backend.fit(examples, CONFIG, served, root / "models" / "v2", stricter, MediaFetcher(settings))
    m = result.metrics
    assert not result.publish and "below the served model's" in result.reason and "mask_map50_95" in result.reason
    # the served model is now v1: its mask mAP on the same held-out images is v1's own
    assert m["served_mask_map50_95"] == pytest.approx(first.metrics["mask_map50_95"], abs=0.02)


def test_bad_training_parameters_are_a_400(trained):
    backend, settings, examples, _, root = trained
    with pytest.raises(BadRequest, match="guard_metric"):
        backend.fit(examples, CONFIG, None, root / "bad", {**PARAMS, "guard_metric": "map50"},
                    MediaFetcher(settings))


def test_a_control_not_trained_now_keeps_the_served_model(trained):
    backend, settings, _, _, root = trained
    served = backend.load_model(root / "models" / "v1")
    writers = [backend.writer(served, c, {}) for c in _controls(CONFIG)]
    out = root / "models" / "carried"
    fit = fit_controls(backend.pool, writers, [], served.yolo, out, PARAMS, MediaFetcher(settings),
                       settings.max_image_pixels, Guard(metric="mask_map50_95"), 4, skip_small=True)
    assert fit.trained == [] and fit.manifest["mask"]["carried"] and fit.manifest["mask"]["classes"] == ["Widget"]
    write_manifest(out, fit.manifest)
    assert load_trained(out).controls["mask"].detector.names == ["Widget"]
    # nothing to train at all is not a version
    with pytest.raises(NotEnoughData, match="no SAM weights"):
        backend.fit([], CONFIG, served, root / "models" / "v3", PARAMS, MediaFetcher(settings))
