"""Interactive Segment Anything (SAM / MobileSAM) masks for Label Studio smart tools, without Label Studio.

`engines` finds and loads a model, `cache` keeps image embeddings (in memory, shared through Redis), `predictor`
turns clicks and boxes into masks, `automatic` refines a detector's boxes into masks, `prompts` holds prompts in
pixels, `masks` fills outlines and outlines masks, `finetune` retrains the mask decoder.
Pure ML: this package never imports `backends` (the Label Studio layer builds on it, not the other way round).
"""
from __future__ import annotations

from .automatic import box_masks
from .cache import EmbeddingCache, Entry
from .engines import CHECKPOINTS, DEFAULT_KIND, KINDS, load_sam, model_id, resolve_checkpoint
from .errors import EngineError, NotEnoughMasks, PromptError
from .finetune import FinetuneReport, finetune_decoder, load_decoder, save_decoder
from .predictor import MaskResult, Segmenter
from .masks import mask_outline, polygon_mask
from .prompts import Prompt, mask_prompts

__all__ = [
    "CHECKPOINTS",
    "DEFAULT_KIND",
    "KINDS",
    "EmbeddingCache",
    "EngineError",
    "Entry",
    "FinetuneReport",
    "MaskResult",
    "NotEnoughMasks",
    "Prompt",
    "PromptError",
    "Segmenter",
    "box_masks",
    "finetune_decoder",
    "load_decoder",
    "load_sam",
    "mask_outline",
    "mask_prompts",
    "model_id",
    "polygon_mask",
    "resolve_checkpoint",
    "save_decoder",
]
