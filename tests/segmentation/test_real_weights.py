"""Mask quality with real SAM / MobileSAM weights, when a checkpoint is available (none is on the development
machine: these tests skip there). SAM_CHECKPOINT names the file (SAM_KIND its kind when the name does not tell);
otherwise mobile_sam.pt or sam_vit_b_01ec64.pth is looked up in WEIGHTS_DIR."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from segmentation.cache import EmbeddingCache
from segmentation.engines import CHECKPOINTS, load_sam, model_id
from segmentation.predictor import Segmenter
from segmentation.prompts import mask_box, mask_prompts
from tests.conftest import SHARED
from tests.segmentation.conftest import coco_examples

SKIP_REASON = "no SAM checkpoint (set SAM_CHECKPOINT or put mobile_sam.pt / sam_vit_b_01ec64.pth in WEIGHTS_DIR)"


def _find_checkpoint() -> tuple[str, Path] | None:
    by_name = {name: kind for kind, (name, _) in CHECKPOINTS.items()}
    env = os.environ.get("SAM_CHECKPOINT")
    if env:
        path = Path(env).expanduser()
        if path.is_file():
            kind = os.environ.get("SAM_KIND") or by_name.get(path.name) or (
                "vit_t" if "mobile" in path.name.lower() else "vit_b")
            return kind, path
    folder = Path(os.environ.get("WEIGHTS_DIR", SHARED / "models"))
    for kind in ("vit_t", "vit_b"):
        path = folder / CHECKPOINTS[kind][0]
        if path.is_file():
            return kind, path
    return None


@pytest.fixture(scope="module")
def real_segmenter() -> Segmenter:
    found = _find_checkpoint()
    if found is None:
        pytest.skip(SKIP_REASON)
    kind, path = found
    sam = load_sam(kind, path)
    return Segmenter(sam, model_id(kind, path, sam), EmbeddingCache())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))


def test_real_box_and_click_masks(real_segmenter, datasets_dir):
    """Large coco128 objects: a box gives a close mask, a click inside a reasonable one."""
    examples = coco_examples(datasets_dir, n_images=6, min_area=0.05)
    rng = np.random.default_rng(0)
    box_ious, click_ious = [], []
    for image, mask in examples:
        box_ious.append(_iou(real_segmenter.segment(image, box=mask_box(mask)).mask, mask))
        points, labels, _ = mask_prompts(mask, rng, n_pos=1, box_jitter=None)
        click_ious.append(_iou(real_segmenter.segment(image, points, labels).mask, mask))
    assert np.mean(box_ious) > 0.75, box_ious
    assert np.mean(click_ious) > 0.45, click_ious


def test_real_boxes_batch(real_segmenter, datasets_dir):
    examples = coco_examples(datasets_dir, n_images=1, min_area=0.01, per_image=5)
    image = examples[0][0]
    masks = [m for _, m in examples]
    results = real_segmenter.segment_boxes(image, np.stack([mask_box(m) for m in masks]))
    ious = [_iou(r.mask, m) for r, m in zip(results, masks)]
    assert np.mean(ious) > 0.7, ious
