"""COCO-style box and mask mAP of detections against ground truth, computed with Ultralytics' own metric code.

Matching follows `DetectionValidator`: per image, predictions sorted by descending confidence are matched greedily
to unclaimed ground-truth boxes of the same class, separately at each IoU threshold 0.50, 0.55, ..., 0.95
(`DetectionValidator.match_predictions`, IoU from `ultralytics.utils.metrics.box_iou`, or `mask_iou` of the outlines
filled into masks for `evaluate_masks`, as `SegmentationValidator` does); AP per class and IoU threshold comes from
`ultralytics.utils.metrics.ap_per_class` (101-point interpolated area under the PR curve).

Predictions should come from a low confidence threshold - 0.001, like Ultralytics' val - otherwise the
precision/recall curve is cut short and mAP is underestimated.
"""
from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import detection.runtime  # noqa: F401  (configures Ultralytics before it is imported)

import cv2
import numpy as np
import torch
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils.metrics import ap_per_class, box_iou, mask_iou

from .types import Detection

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)  # DetectionValidator.iouv
PREDICT_CONF = 0.001  # confidence threshold to predict with before evaluating (Ultralytics val default)
MASK_SIDE = 640  # outlines are filled into masks whose longer side is at most this (IoU barely moves, time does)

Truth = tuple[str, tuple[float, float, float, float]]
Outline = tuple[str, np.ndarray]  # (class name, (N, 2) polygon in pixels)


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
    if len(pred_cls) == 0 or len(true_cls) == 0:
        return np.zeros((len(pred_cls), len(IOU_THRESHOLDS)), dtype=bool)
    return match_iou(pred_cls, true_cls, box_iou(true_boxes, pred_boxes))


def match_iou(pred_cls: np.ndarray, true_cls: np.ndarray, iou: torch.Tensor) -> np.ndarray:
    """`match_image` from an (M truths, N predictions) IoU matrix of any geometry."""
    n = len(pred_cls)
    if n == 0 or len(true_cls) == 0:
        return np.zeros((n, len(IOU_THRESHOLDS)), dtype=bool)
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
    return _mean_ap(predictions, truths, class_names,
                    lambda preds, gts, _: box_iou(_xyxy(gts), _xyxy([d.xyxy for d in preds])))


def evaluate_masks(predictions: Sequence[Sequence[Detection]], truths: Sequence[Sequence[Outline]],
                   sizes: Sequence[tuple[int, int]], class_names: Sequence[str]) -> dict:
    """Mask mAP@0.5 and mAP@0.5:0.95, like `evaluate` but with the IoU of the objects' pixels: each predicted
    `Detection.polygon` (its box where it has none) and each true outline is filled into a mask of its image
    (scaled so that the longer side is at most `MASK_SIDE`).

    Args:
        predictions: per image, the detections (pixel coordinates, conf=0.001).
        truths: per image, (class name, (N, 2) outline) in the same pixels.
        sizes: per image, (width, height) in pixels.
        class_names: the classes to score.

    Returns:
        The keys of `evaluate`.
    """
    if len(sizes) != len(truths):
        raise ValueError(f"{len(sizes)} image sizes for {len(truths)} images")
    return _mean_ap(predictions, truths, class_names, _mask_iou, list(sizes))


def _filled(outlines: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """(len(outlines), h*w) float: each outline filled into a mask of the image scaled to `MASK_SIDE`."""
    width, height = size
    scale = min(1.0, MASK_SIDE / max(width, height, 1))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    out = np.zeros((len(outlines), h, w), np.uint8)
    for k, points in enumerate(outlines):
        pts = np.round(np.asarray(points, dtype=np.float64).reshape(-1, 2) * scale).astype(np.int32)
        cv2.fillPoly(out[k], [pts.reshape(-1, 1, 2)], 1)
    return torch.from_numpy(out.reshape(len(outlines), -1)).float()


def _mask_iou(preds: list[Detection], gts: list, size: tuple[int, int]) -> torch.Tensor:
    def outline(d: Detection) -> np.ndarray:
        if d.polygon is not None and len(d.polygon) >= 3:
            return d.polygon
        x1, y1, x2, y2 = d.xyxy
        return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])

    return mask_iou(_filled(list(gts), size), _filled([outline(d) for d in preds], size))


def _mean_ap(predictions, truths, class_names, iou, sizes: list | None = None) -> dict:
    """The means of `evaluate` with `iou(predictions, true geometries, image size)` -> (M, N) IoU per image."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction lists for {len(truths)} images")
    index = {str(n): i for i, n in enumerate(class_names)}
    tps, confs, pcls, tcls = [], [], [], []
    for k, (preds, gts) in enumerate(zip(predictions, truths)):
        gts = [(index[str(c)], geometry) for c, geometry in gts if str(c) in index]
        preds = sorted((d for d in preds if str(d.cls) in index), key=lambda d: -float(d.score))
        t_cls = np.array([c for c, _ in gts], dtype=np.float64)
        p_cls = np.array([index[str(d.cls)] for d in preds], dtype=np.float64)
        size = sizes[k] if sizes is not None else None
        matched = match_iou(p_cls, t_cls, iou(preds, [g for _, g in gts], size)) if len(preds) and len(gts) \
            else np.zeros((len(preds), len(IOU_THRESHOLDS)), dtype=bool)
        tps.append(matched)
        confs.append(np.array([float(d.score) for d in preds], dtype=np.float64))
        pcls.append(p_cls)
        tcls.append(t_cls)
    target_cls = np.concatenate(tcls) if tcls else np.zeros(0)
    result = {"map50": 0.0, "map50_95": 0.0, "precision": 0.0, "recall": 0.0, "per_class": {},
              "images": len(truths), "instances": int(len(target_cls))}
    if not len(target_cls):
        return result
    tp = np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
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
