"""Prompts for SAM in pixels: the `Prompt` a click or a box makes (Label Studio's smart-tool context is read into
one by `backends/regions_context.py`), and prompts sampled from ground-truth masks for training."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Prompt:
    """SAM prompts in pixels of the image.

    Attributes:
        points: (N, 2) float32 x, y.
        point_labels: (N,) int64, 1 positive, 0 negative.
        box: (4,) float32 x1, y1, x2, y2, or None.
        label: the label of the first positive prompt (a point, else the box), or None.
        size_mismatch: the regions were drawn on an image of another size than the one given (percent
            coordinates still place them right; worth a log line, e.g. a re-encoded or resized file).
    """

    points: np.ndarray
    point_labels: np.ndarray
    box: np.ndarray | None
    label: str | None
    size_mismatch: bool = False


def mask_box(mask: np.ndarray) -> np.ndarray:
    """The tight x1, y1, x2, y2 box of a boolean mask (x2, y2 are the far pixel edges).

    Raises:
        ValueError: an empty mask.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask")
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def mask_prompts(mask: np.ndarray, rng: np.random.Generator, n_pos: int = 1, n_neg: int = 0,
                 box_jitter: float | None = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Sample SAM prompts from a ground-truth mask, as an annotator would give them (for training/evaluation).

    Positive points fall well inside the object (away from its border, where a click is ambiguous); negative points
    fall outside it but near it (within its box grown by a quarter); the box is the mask's box with each side moved
    by Gaussian noise of `box_jitter` x the side length, capped at 20 px (as in the SAM paper).

    Args:
        mask: (H, W) bool ground truth, not empty.
        rng: the random generator (seeded by the caller for repeatable prompts).
        n_pos, n_neg: numbers of positive and negative points.
        box_jitter: noise of the box sides as a fraction of its size; None for no box.

    Returns:
        (points (n_pos + n_neg, 2) float32 x, y; labels (n,) int64; box (4,) float32 or None).

    Raises:
        ValueError: an empty mask.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    x1, y1, x2, y2 = mask_box(mask)
    points: list[np.ndarray] = []
    if n_pos:
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        ys, xs = np.nonzero(dist >= 0.5 * dist.max())
        idx = rng.choice(len(xs), size=n_pos, replace=len(xs) < n_pos)
        points.append(np.stack([xs[idx], ys[idx]], 1))
    if n_neg:
        gx, gy = 0.25 * (x2 - x1), 0.25 * (y2 - y1)
        near = np.zeros_like(mask)
        near[int(max(y1 - gy, 0)):int(min(y2 + gy, h)), int(max(x1 - gx, 0)):int(min(x2 + gx, w))] = True
        ys, xs = np.nonzero(near & ~mask)
        if len(xs) == 0:  # the object fills its surroundings: anywhere outside it
            ys, xs = np.nonzero(~mask)
        if len(xs):
            idx = rng.choice(len(xs), size=n_neg, replace=len(xs) < n_neg)
            points.append(np.stack([xs[idx], ys[idx]], 1))
    pts = np.concatenate(points).astype(np.float32) if points else np.zeros((0, 2), np.float32)
    labels = (np.arange(len(pts)) < n_pos).astype(np.int64)  # positives were sampled first
    box = None
    if box_jitter is not None:
        bw, bh = x2 - x1, y2 - y1
        noise = rng.normal(0.0, box_jitter, 4) * np.array([bw, bh, bw, bh])
        noise = np.clip(noise, -20, 20)
        jittered = np.array([x1, y1, x2, y2]) + noise
        box = np.array([np.clip(jittered[0], 0, w), np.clip(jittered[1], 0, h), np.clip(jittered[2], 0, w),
                        np.clip(jittered[3], 0, h)], dtype=np.float32)
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:  # noise collapsed a tiny object's box: keep the true one
            box = np.array([x1, y1, x2, y2], dtype=np.float32)
    return pts, labels, box
