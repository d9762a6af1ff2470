"""Automatic masks (no clicks): a detector's boxes refined into SAM masks, and SAM's image embedding computed ahead
of the annotator's first click."""
from __future__ import annotations

import numpy as np
import torch

from .predictor import MaskResult, Segmenter


def box_masks(segmenter: Segmenter | None, image: np.ndarray, boxes: np.ndarray, refine: bool = True,
              warm: bool = False, decoder: torch.nn.Module | None = None, image_key: str | None = None
              ) -> list[MaskResult] | None:
    """SAM's mask of each box when `refine`, else None (the detector's own shapes stay).

    Args:
        segmenter: SAM, or None where it is not available (then nothing is refined or computed).
        image: (H, W, 3) RGB uint8.
        boxes: (K, 4) x1, y1, x2, y2 pixels.
        refine: turn the boxes into SAM masks.
        warm: when nothing was refined, compute the image's SAM embedding anyway, so that the annotator's first
            click on this image finds it in the cache.
        decoder: the mask decoder to refine with (a served version's trained one; None: SAM's own).
        image_key: the key the image's clicks will look its embedding up by (`Segmenter.embed`); None: its pixels'
            hash.

    Returns:
        K results in the order of `boxes`, or None when nothing was refined.
    """
    if segmenter is None:
        return None
    if refine and len(boxes):
        return segmenter.segment_boxes(image, boxes, image_key=image_key, decoder=decoder)
    if warm:
        segmenter.embed(image, image_key)
    return None
