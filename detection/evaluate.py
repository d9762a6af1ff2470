"""COCO-style box mAP of detections against ground truth, computed with Ultralytics' own metric code.

Matching follows `DetectionValidator`: per image, predictions sorted by descending confidence are matched greedily
to unclaimed ground-truth boxes of the same class, separately at each IoU threshold 0.50, 0.55, ..., 0.95
(`DetectionValidator.match_predictions`, IoU from `ultralytics.utils.metrics.box_iou`); AP per class and IoU
threshold comes from `ultralytics.utils.metrics.ap_per_class` (101-point interpolated area under the PR curve).

Predictions should come from a low confidence threshold - 0.001, like Ultralytics' val - otherwise the
precision/recall curve is cut short and mAP is underestimated.
"""
from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)

import numpy as np
import torch
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils.metrics import ap_per_class, box_iou

from .types import Detection

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)  # DetectionValidator.iouv
PREDICT_CONF = 0.001  # confidence threshold to predict with before evaluating (Ultralytics val default)

Truth = tuple[str, tuple[float, float, float, float]]


def _xyxy(boxes: list) -> torch.Tensor:
    if not boxes:
        return torch.zeros((0, 4), dtype=torch.float64)
    b = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    return torch.stack((torch.minimum(b[:, 0], b[:, 2]), torch.minimum(b[:, 1], b[:, 3]),
                        torch.maximum(b[:, 0], b[:, 2]), torch.maximum(b[:, 1], b[:, 3])), 1)


def match_image(pred_cls: np.ndarray, pred_boxes: torch.Tensor, true_cls: np.ndarray,
                true_boxes: torch.Tensor) -> np.ndarray:
    """(N, 10) bool: whether each prediction (sorted by descending confidence) is a true positive at each IoU
    threshold, by Ultralytics' `DetectionValidator.match_predictions`."""
    n = len(pred_cls)
    if n == 0 or len(true_cls) == 0:
        return np.zeros((n, len(IOU_THRESHOLDS)), dtype=bool)
    iou = box_iou(true_boxes, pred_boxes)  # (M, N)
    # match_predictions only reads self.iouv; calling it on a stand-in avoids building a validator (dataloader, dirs)
    correct = DetectionValidator.match_predictions(
        SimpleNamespace(iouv=IOU_THRESHOLDS), torch.as_tensor(pred_cls), torch.as_tensor(true_cls), iou
    )
    return correct.cpu().numpy().astype(bool)


def evaluate(predictions: Sequence[Sequence[Detection]], truths: Sequence[Sequence[Truth]],
             class_names: Sequence[str]) -> dict:
    """Box mAP@0.5 and mAP@0.5:0.95 of `predictions` against `truths`, image by image.

    Only classes in `class_names` count: predictions and ground truth of other classes are ignored. Classes with no
    ground truth are left out of the means (as Ultralytics does), so their false positives cost nothing; a class
    with ground truth but no predictions has AP 0. With no ground truth at all every number is 0.

    Args:
        predictions: per image, the detections (pixel xyxy; predict with conf=0.001, see PREDICT_CONF).
        truths: per image, (class name, (x1, y1, x2, y2)) in the same pixels.
        class_names: the classes to score.

    Returns:
        {"map50", "map50_95", "precision", "recall" (means over classes with ground truth; precision/recall at the
        confidence that maximises mean F1, as Ultralytics reports them), "per_class": {name: {"map50", "map50_95",
        "instances"}} for each class with ground truth, "images": number of images, "instances": ground-truth
        objects of the scored classes}.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction lists for {len(truths)} images")
    index = {str(n): i for i, n in enumerate(class_names)}
    niou = len(IOU_THRESHOLDS)
    tps, confs, pcls, tcls = [], [], [], []
    for preds, gts in zip(predictions, truths):
        gts = [(index[str(c)], box) for c, box in gts if str(c) in index]
        preds = sorted((d for d in preds if str(d.cls) in index), key=lambda d: -float(d.score))
        t_cls = np.array([c for c, _ in gts], dtype=np.float64)
        p_cls = np.array([index[str(d.cls)] for d in preds], dtype=np.float64)
        tps.append(match_image(p_cls, _xyxy([d.xyxy for d in preds]), t_cls, _xyxy([b for _, b in gts])))
        confs.append(np.array([float(d.score) for d in preds], dtype=np.float64))
        pcls.append(p_cls)
        tcls.append(t_cls)
    target_cls = np.concatenate(tcls) if tcls else np.zeros(0)
    result = {"map50": 0.0, "map50_95": 0.0, "precision": 0.0, "recall": 0.0, "per_class": {},
              "images": len(truths), "instances": int(len(target_cls))}
    if not len(target_cls):
        return result
    tp = np.concatenate(tps) if tps else np.zeros((0, niou), dtype=bool)
    out = ap_per_class(tp, np.concatenate(confs), np.concatenate(pcls), target_cls)
    p, r, ap, classes = out[2], out[3], out[5], out[6]  # ap: (classes with ground truth, 10)
    counts = np.bincount(target_cls.astype(int), minlength=len(index))
    result.update(
        map50=float(ap[:, 0].mean()),
        map50_95=float(ap.mean()),
        precision=float(p.mean()),
        recall=float(r.mean()),
        per_class={
            str(class_names[c]): {"map50": float(ap[k, 0]), "map50_95": float(ap[k].mean()),
                                  "instances": int(counts[c])}
            for k, c in enumerate(classes)
        },
    )
    return result
