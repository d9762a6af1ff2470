"""Agreement measures on image regions: boxes, polygons and brush masks by IoU (pycocotools), OCR lines by the
character error rate of IoU-matched lines, keypoints by OKS (Object Keypoint Similarity, COCO's formula).

Regions of two annotators are paired one to one by the Hungarian method on their IoU (or OKS), so the order they
were drawn in does not matter. Boxes, polygons and masks score as detection F1: a pair counts when its labels agree
and IoU >= 0.5, F1 = 2 * pairs / (regions of one + regions of the other). OCR lines and keypoint instances score the
same way with each pair counting for its similarity (1 - CER of the two texts; OKS) instead of 1.
"""
from __future__ import annotations

import math

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from .agreement_text import line_similarity
from .export_keypoints import Instance, Skeleton, instances
from .export_regions import Region, regions, result_size

IOU_MATCH = 0.5
# percent x 10 when the results carry no image size: IoU does not depend on the scale of the axes
FALLBACK_SIZE = (1000, 1000)
MIN_AREA = 0.01  # OKS's scale for an instance with no extent (one keypoint, no box): this share of the image


def _rle(region: Region, w: int, h: int) -> dict:
    """The region's pixels as a COCO RLE (an empty one for a shape without area or an unreadable mask)."""
    try:
        if region.kind == "mask":
            return mask_utils.encode(np.asfortranarray(region.mask(w, h).astype(np.uint8)))
        pts = region.corners(w, h)
        if len(pts) >= 3:
            return mask_utils.merge(mask_utils.frPyObjects([[c for p in pts for c in p]], h, w))
    except ValueError:
        pass
    return mask_utils.encode(np.zeros((h, w), dtype=np.uint8, order="F"))


def iou_matrix(a: list[Region], b: list[Region], w: int, h: int, labels: bool = True) -> np.ndarray:
    """IoU of every pair (0 where the labels differ, when `labels`)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    ious = np.asarray(mask_utils.iou([_rle(r, w, h) for r in a], [_rle(r, w, h) for r in b], [0] * len(b)),
                      dtype=np.float64).reshape(len(a), len(b))
    if labels:
        same = np.array([[sorted(ra.labels) == sorted(rb.labels) for rb in b] for ra in a])
        ious = np.where(same, ious, 0.0)
    return ious


def matched(scores: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """The one-to-one pairing with the largest total score (Hungarian), keeping pairs scoring >= minimum."""
    if not scores.size:
        return []
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return [(i, j) for i, j in zip(rows, cols) if scores[i, j] >= minimum and scores[i, j] > 0]


def _size(a: list[dict], b: list[dict]) -> tuple[int, int]:
    return result_size(a) or result_size(b) or FALLBACK_SIZE


def regions_f1(a: list[dict], b: list[dict]) -> float:
    """Detection F1 at IoU >= 0.5 between two annotators' regions of one control."""
    ra, rb = regions(a), regions(b)
    if not ra and not rb:
        return 1.0
    w, h = _size(a, b)
    return 2 * len(matched(iou_matrix(ra, rb, w, h), IOU_MATCH)) / (len(ra) + len(rb))


def lines_agreement(a: list[dict], b: list[dict], ids_a: set, ids_b: set) -> float:
    """OCR: the regions whose ids the per-region TextArea results name, paired by IoU >= 0.5 whatever their
    labels, each pair counting for the similarity of its texts."""
    ra = [r for r in regions(a) if r.id in ids_a]
    rb = [r for r in regions(b) if r.id in ids_b]
    if not ra and not rb:
        return 1.0
    w, h = _size(a, b)
    pairs = matched(iou_matrix(ra, rb, w, h, labels=False), IOU_MATCH)
    return 2 * sum(line_similarity(ra[i].text or "", rb[j].text or "") for i, j in pairs) / (len(ra) + len(rb))


def oks(ia: Instance, ib: Instance, sigmas: dict[str, float], w: int, h: int) -> float:
    """Object Keypoint Similarity of two instances: exp(-d^2 / (2 s^2 k^2)) per keypoint (k = 2 sigma, s^2 the
    instances' mean area), averaged over the keypoints either labeled (one only: 0); 0 across categories."""
    if ia.category != ib.category:
        return 0.0
    names = set(ia.points) | set(ib.points)
    if not names:
        return 1.0
    area = max(sum(i.bbox(w, h)[2] * i.bbox(w, h)[3] for i in (ia, ib)) / 2, MIN_AREA * w * h)
    total = 0.0
    for n in set(ia.points) & set(ib.points):
        (xa, ya), (xb, yb) = ia.points[n], ib.points[n]
        total += math.exp(-((xa - xb) ** 2 + (ya - yb) ** 2) / (2 * area * (2 * sigmas[n]) ** 2))
    return total / len(names)


def keypoints_agreement(a: list[dict], b: list[dict]) -> float:
    """Keypoint instances paired by OKS, each pair counting for its OKS."""
    ra, rb = regions(a), regions(b)
    names = list(dict.fromkeys(r.label for r in ra + rb if r.kind == "keypoint"))
    boxes = any(str(r.get("type", "")).lower() == "rectanglelabels" for r in a + b)
    sk = Skeleton(names, ["keypoints"], boxes)
    sigmas = dict(zip(names, sk.sigmas()))
    w, h = _size(a, b)
    ia, ib = instances(ra, sk, w, h), instances(rb, sk, w, h)
    if not ia and not ib:
        return 1.0
    scores = np.array([[oks(x, y, sigmas, w, h) for y in ib] for x in ia]).reshape(len(ia), len(ib))
    return 2 * sum(scores[i, j] for i, j in matched(scores, 0.0)) / (len(ia) + len(ib))
