"""A YOLO pose model for a skeleton of its own: the dataset, the flip order, a start from the detection weights,
and a short CPU training on synthetic figures judged by the guard (Ultralytics' pose mAP)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from bench.keypoints_shapes import LABELS, make_samples
from detection.images import load_image
from detection.train import TrainOptions
from keypoints.dataset import build_dataset, label_line
from keypoints.guard import Guard, train_pose
from keypoints.model import PoseModel, PoseModelError
from keypoints.skeleton import flip_index
from keypoints.train import start_model
from keypoints.types import Instance, Keypoint

TINY = TrainOptions(epochs=1, imgsz=160, batch=4, workers=0)


def test_flip_order_pairs_left_and_right_by_name():
    assert flip_index(["nose", "left_eye", "right_eye", "L hand", "R hand", "leftFoot", "rightFoot", "bright"]) \
        == [0, 2, 1, 4, 3, 6, 5, 7]
    assert flip_index(["left", "Left", "right"]) == [0, 1, 2]  # two claim one mirror: no flip at all


def test_a_label_line_marks_missing_points_unlabeled():
    inst = Instance([Keypoint("b", 50, 20), Keypoint("zzz", 1, 1)], xyxy=(40, 10, 60, 40))
    parts = label_line(inst, ["a", "b"], 100, 50).split()
    assert parts[:5] == ["0", "0.500000", "0.500000", "0.200000", "0.600000"]
    assert parts[5:] == ["0.000000", "0.000000", "0", "0.500000", "0.400000", "2"]
    assert label_line(Instance([Keypoint("zzz", 1, 1)]), ["a"], 100, 50) is None
    boxless = label_line(Instance([Keypoint("a", 10, 10), Keypoint("b", 30, 30)]), ["a", "b"], 100, 50).split()
    assert float(boxless[3]) > 0.2  # the points' box, widened


def test_the_dataset_holds_the_skeleton(tmp_path):
    samples = make_samples(tmp_path / "img", 6)
    data = build_dataset(samples, LABELS, tmp_path / "ds")
    spec = yaml.safe_load(data.data_yaml.read_text())
    assert spec["kpt_shape"] == [3, 3] and spec["flip_idx"] == [0, 1, 2] and spec["names"] == {0: "instance"}
    assert data.val_ids and set(data.train_ids) | set(data.val_ids) == {s.id for s in samples}
    assert len(list((tmp_path / "ds" / "labels" / "train").glob("*.txt"))) == len(data.train_ids)


def test_a_new_pose_model_starts_from_the_detection_backbone(weights_dir):
    model = start_model(weights_dir / "yolov8n.pt", from_detector=True)
    detector = torch.load(weights_dir / "yolov8n.pt", weights_only=False)["model"]
    first = next(model.model.model[0].parameters())
    assert model.task == "pose" and torch.equal(first.float(), next(detector.model[0].parameters()).float())


@pytest.mark.slow
def test_training_on_synthetic_figures_is_guarded(tmp_path, weights_dir):
    samples = make_samples(tmp_path / "img", 10)
    fit = train_pose(samples, LABELS, weights_dir / "yolov8n.pt", True, None, tmp_path / "v1", TINY, Guard())
    assert fit.publish and fit.metrics["served_pose_map50_95"] == 0.0  # nothing served these labels yet
    assert fit.metrics["train_images"] + fit.metrics["val_images"] >= 10
    model = PoseModel.load(fit.weights, LABELS)
    found = model.predict([load_image(samples[0].image)], conf=0.0, imgsz=160)[0]
    assert found and [p.label for p in found[0].points] == LABELS
    assert all(np.isfinite([p.x, p.y, p.score]).all() for p in found[0].points)
    with pytest.raises(PoseModelError, match="3 keypoints, not 2"):
        PoseModel.load(fit.weights, LABELS[:2])
    # a served model that the candidate must beat by more than any model can: the guard refuses to publish
    again = train_pose(samples, LABELS, fit.weights, False, fit.weights, tmp_path / "v2", TINY,
                       Guard(min_gain=1.0))
    assert not again.publish and "below the served model" in again.reason
    assert again.metrics["served_pose_map50_95"] == pytest.approx(fit.metrics["pose_map50_95"], abs=1e-6)
