from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import detection.runtime  # noqa: F401
from detection.dataset import build_dataset
from detection.evaluate import PREDICT_CONF, evaluate, evaluate_masks
from detection.types import Detection
from ops.sample_data import coco128_names, coco128_samples

# Ultralytics' 101-point interpolation (compute_ap) gives a perfect class 0.995, not 1.0: the PR envelope drops to 0
# at recall 1 and the last 1/100 interval is a trapezoid.
PERFECT = pytest.approx(1.0, abs=0.006)


def det(cls: str, xyxy, score: float = 0.9) -> Detection:
    return Detection(cls=cls, score=score, xyxy=tuple(float(v) for v in xyxy))


TRUTHS = [
    [("cat", (10, 10, 50, 50)), ("dog", (60, 60, 120, 100))],
    [("cat", (0, 0, 30, 40))],
    [],  # background image
]


def test_perfect_predictions():
    preds = [[det(c, b) for c, b in image] for image in TRUTHS]
    r = evaluate(preds, TRUTHS, ["cat", "dog"])
    assert r["map50"] == PERFECT and r["map50_95"] == PERFECT
    assert r["images"] == 3 and r["instances"] == 3
    assert r["per_class"]["cat"]["instances"] == 2 and r["per_class"]["dog"]["instances"] == 1
    assert r["per_class"]["dog"]["map50_95"] == PERFECT


def test_no_predictions():
    r = evaluate([[], [], []], TRUTHS, ["cat", "dog"])
    assert r["map50"] == 0 and r["map50_95"] == 0
    assert r["per_class"]["cat"] == {"map50": 0.0, "map50_95": 0.0, "instances": 2}


def test_no_ground_truth_gives_zero():
    r = evaluate([[det("cat", (0, 0, 10, 10))]], [[]], ["cat"])
    assert r["map50"] == 0 and r["instances"] == 0 and r["per_class"] == {}


def test_shifted_box_counts_at_low_iou_thresholds_only():
    truth = [[("cat", (0, 0, 100, 100))]]
    # shift 24 px: IoU = 76*100 / (2*10000 - 7600) = 0.6129 -> a hit at 0.50, 0.55, 0.60 only
    r = evaluate([[det("cat", (24, 0, 124, 100))]], truth, ["cat"])
    assert r["map50"] == PERFECT
    assert r["map50_95"] == pytest.approx(0.3 * r["map50"], abs=1e-9)
    assert 0 < r["map50_95"] < r["map50"]


def test_duplicates_wrong_classes_and_ranking():
    truth = [[("cat", (0, 0, 100, 100)), ("cat", (200, 0, 300, 100))]]
    # one cat found twice: the duplicate is a false positive, the second cat is missed -> recall 0.5
    preds = [[det("cat", (0, 0, 100, 100), 0.9), det("cat", (1, 1, 100, 100), 0.8)]]
    r = evaluate(preds, truth, ["cat"])
    assert r["map50"] == pytest.approx(0.5, abs=0.01)
    # a confident false positive ranked above the true positives lowers AP; ranked below it costs nothing
    fp = det("cat", (500, 500, 600, 600), 0.95)
    hits = [det("cat", (0, 0, 100, 100), 0.9), det("cat", (200, 0, 300, 100), 0.8)]
    above = evaluate([[fp, *hits]], truth, ["cat"])["map50"]
    below = evaluate([[*hits, det("cat", (500, 500, 600, 600), 0.1)]], truth, ["cat"])["map50"]
    assert below == PERFECT and above < below
    # a box of the wrong class never matches
    assert evaluate([[det("dog", (0, 0, 100, 100))]], [[("cat", (0, 0, 100, 100))]], ["cat", "dog"])["map50"] == 0


def test_only_listed_classes_count():
    truth = [[("cat", (0, 0, 100, 100)), ("bird", (200, 0, 300, 100))]]
    preds = [[det("cat", (0, 0, 100, 100)), det("bird", (0, 0, 100, 100), 0.99), det("fish", (0, 0, 10, 10))]]
    r = evaluate(preds, truth, ["cat"])
    assert r["map50"] == PERFECT and r["instances"] == 1 and set(r["per_class"]) == {"cat"}
    # a listed class with ground truth but no predictions drags the mean down; one without ground truth does not
    r = evaluate([[det("cat", (0, 0, 100, 100)), det("dog", (0, 0, 50, 50))]], truth, ["cat", "bird", "dog"])
    assert set(r["per_class"]) == {"cat", "bird"}
    assert r["per_class"]["bird"]["map50"] == 0
    assert r["map50"] == pytest.approx(r["per_class"]["cat"]["map50"] / 2)


def test_mismatched_lengths():
    with pytest.raises(ValueError):
        evaluate([[]], [[], []], ["cat"])


# ----------------------------------------------------------------------------------------- against Ultralytics' own val


@pytest.fixture(scope="module")
def coco20(datasets_dir: Path, tmp_path_factory):
    """20 coco128 images as a dataset with (nearly) everything in val, and the val samples."""
    names = coco128_names(datasets_dir)
    class_names = [names[i] for i in range(len(names))]
    samples = coco128_samples(datasets_dir, 20)
    ds = build_dataset(samples, class_names, tmp_path_factory.mktemp("coco20") / "ds", val_fraction=1.0)
    data_yaml = ds.data_yaml
    val = [s for s in samples if s.id in set(ds.val_ids)]
    assert len(val) == 19
    return data_yaml, val, class_names


@pytest.fixture(scope="module")
def yolov8n(weights_dir: Path):
    from ultralytics import YOLO

    return YOLO(str(weights_dir / "yolov8n.pt"))


def test_same_numbers_as_ultralytics_validator_on_its_own_predictions(coco20, yolov8n):
    """Feeding `evaluate` exactly the predictions and labels Ultralytics' validator scores gives its mAP."""
    from ultralytics.models.yolo.detect import DetectionValidator

    data_yaml, val, class_names = coco20
    seen: list[tuple[list[Detection], list]] = []

    class Recorder(DetectionValidator):
        def update_metrics(self, preds, batch):
            for si, pred in enumerate(preds):
                pbatch = self._prepare_batch(si, batch)
                names = self.names
                seen.append((
                    [det(names[int(c)], b.tolist(), float(s)) for b, s, c in zip(pred["bboxes"], pred["conf"],
                                                                                pred["cls"])],
                    [(names[int(c)], tuple(b.tolist())) for c, b in zip(pbatch["cls"], pbatch["bboxes"])],
                ))
            super().update_metrics(preds, batch)

    metrics = yolov8n.val(validator=Recorder, data=str(data_yaml), imgsz=640, batch=8, conf=0.001, plots=False,
                          verbose=False)
    assert len(seen) == len(val)
    r = evaluate([p for p, _ in seen], [t for _, t in seen], class_names)
    assert r["map50"] == pytest.approx(metrics.box.map50, abs=1e-6)
    assert r["map50_95"] == pytest.approx(metrics.box.map, abs=1e-6)
    assert r["instances"] == sum(len(s.boxes) for s in val)


def test_close_to_ultralytics_val_from_predict(coco20, yolov8n):
    """`evaluate` on YOLO.predict output (conf=0.001) vs. the labels in pixels is within 0.03 mAP50 of what
    `YOLO.val` reports on the same images (the two pipelines letterbox a little differently and val's NMS is
    multi-label, so they are not identical)."""
    data_yaml, val, class_names = coco20
    preds = []
    for s in val:
        r = yolov8n.predict(str(s.image), conf=PREDICT_CONF, imgsz=640, verbose=False)[0]
        preds.append([det(yolov8n.names[int(c)], b.tolist(), float(p))
                      for c, p, b in zip(r.boxes.cls, r.boxes.conf, r.boxes.xyxy)])
    ours = evaluate(preds, [s.boxes for s in val], class_names)
    theirs = yolov8n.val(data=str(data_yaml), imgsz=640, batch=8, conf=0.001, plots=False, verbose=False)
    assert ours["images"] == len(val) == 19
    assert ours["map50"] == pytest.approx(theirs.box.map50, abs=0.03)
    assert ours["map50_95"] == pytest.approx(theirs.box.map, abs=0.03)
    assert ours["map50"] > 0.7  # yolov8n on COCO images it has seen


def _square(x0, y0, side):
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]], dtype=float)


def test_mask_map_scores_the_pixels_not_the_boxes():
    # a triangle and the square around it share one box: box mAP is perfect, mask IoU is 1/2
    truth = [("cat", np.array([[10, 10], [90, 10], [10, 90]], dtype=float))]
    as_square = Detection("cat", 0.9, (10, 10, 90, 90), _square(10, 10, 80))
    as_triangle = Detection("cat", 0.9, (10, 10, 90, 90), truth[0][1])
    assert evaluate([[as_square]], [[("cat", (10, 10, 90, 90))]], ["cat"])["map50"] == PERFECT
    half = evaluate_masks([[as_square]], [truth], [(100, 100)], ["cat"])
    assert half["map50"] == PERFECT and half["map50_95"] == pytest.approx(0.1, abs=0.01)  # IoU ~0.5: AP only at 0.5
    assert evaluate_masks([[as_triangle]], [truth], [(100, 100)], ["cat"])["map50_95"] == PERFECT
    # a detection without an outline counts as its box; other classes and empty images cost nothing
    boxed = Detection("cat", 0.8, (10, 10, 90, 90))
    r = evaluate_masks([[boxed, Detection("dog", 0.9, (0, 0, 5, 5))], []], [truth, []], [(100, 100), (50, 50)],
                       ["cat"])
    assert r["map50"] == PERFECT and r["map50_95"] < 0.2 and r["images"] == 2 and r["instances"] == 1
    assert evaluate_masks([[]], [truth], [(100, 100)], ["cat"])["map50"] == 0
