"""SAM's mask decoder as a part of a segmentation version: fine-tuned on the submitted brush masks and polygons
(`segmentation.finetune`, from the served version's decoder) and saved into the version's folder."""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segmentation.errors import NotEnoughMasks
from segmentation.finetune import DECODER_FILE, FinetuneReport, finetune_decoder, save_decoder
from segmentation.predictor import Segmenter

from .base import LabeledTask
from .exceptions import ModelUnavailable
from .labels import Control
from .regions_training import mask_pairs

log = logging.getLogger(__name__)


def fit_decoder(segmenter: Callable[[], Segmenter], kind: str, examples: list[LabeledTask],
                controls: tuple[Control, ...], media, max_pixels: int, parent_decoder: Any, parent_folder: Path | None,
                out_dir: Path, metrics: dict, **options: Any) -> FinetuneReport | None:
    """Fine-tune SAM's decoder from `parent_decoder` (None: SAM's own) into `out_dir`; its metrics, the masks used
    and what was skipped are added to `metrics` (unknown labels merged with those already there).

    Args:
        segmenter: gives SAM, or raises `ModelUnavailable` without weights.
        parent_folder: the served version's folder: its decoder is carried into `out_dir` when none is trained.
        options: `finetune_decoder`'s val_fraction, epochs, lr, seed, max_seconds.

    Returns:
        The report (`improved`, `reason`), or None with the reason in `metrics["sam"]` when there are no SAM
        weights or fewer masks than training needs.
    """
    try:
        base = segmenter()
    except ModelUnavailable as e:
        metrics["sam"] = f"mask decoder not trained: no SAM weights ({e})"
        _carry(parent_folder, out_dir, metrics)
        return None
    pairs, skipped = mask_pairs(examples, controls, media, max_pixels)
    try:
        if len(pairs) < 2:
            raise NotEnoughMasks(f"{len(pairs)} submitted masks; mask-decoder training needs at least 2")
        # apply=False: the served model is kept
        report = finetune_decoder(base, pairs, apply=False, start_decoder=parent_decoder, **options)
    except NotEnoughMasks as e:
        metrics["sam"] = f"mask decoder not trained: {e}"
        _carry(parent_folder, out_dir, metrics)
        return None
    unknown = {**skipped.pop("unknown_labels"), **metrics.get("unknown_labels", {})}
    metrics.update({**report.metrics, **skipped, "masks": len(pairs), "unknown_labels": unknown})
    save_decoder(report.state_dict, out_dir, {"sam": kind, "model_id": base.model_id, "metrics": report.metrics})
    return report


def _carry(parent_folder: Path | None, out_dir: Path, metrics: dict) -> None:
    """The served version's decoder (weights and notes) copied into the new version, which would lose it else."""
    if parent_folder is None or not (Path(parent_folder) / DECODER_FILE).is_file():
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (DECODER_FILE, "mask_decoder.json"):
        if (Path(parent_folder) / name).is_file():
            shutil.copyfile(Path(parent_folder) / name, out_dir / name)
    metrics["sam"] += "; the served version's decoder is kept"
