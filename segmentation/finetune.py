"""Retraining SAM's mask decoder on the masks annotators made, with the image and prompt encoders frozen.

Only the decoder (about 4M parameters) learns, from cached image embeddings, so a round of training costs
seconds per image on CPU instead of the minutes a full fine-tune would. Prompts are sampled from each mask as an
annotator would click (a box, one point, or two positive points and a negative one); losses are those of the SAM
paper: focal + dice on the mask, MSE on the predicted IoU, and for the ambiguous single click only the best of the
three proposals is trained. The new decoder is kept only when it beats the old one on held-out masks.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .cache import Entry
from .errors import EngineError, NotEnoughMasks
from .predictor import Segmenter, as_rgb, image_sha256
from .prompts import mask_prompts

log = logging.getLogger(__name__)

DECODER_FILE = "mask_decoder.pt"
# Prompt kinds sampled per mask, in turn: (positive points, negative points, box?)
PROMPT_KINDS: dict[str, tuple[int, int, bool]] = {"box": (0, 0, True), "point": (1, 0, False),
                                                  "points": (2, 1, False)}
_FOCAL_WEIGHT = 20.0  # focal : dice = 20 : 1, as in the SAM paper
_EVAL_SEED_OFFSET = 7919  # evaluation prompts come from their own stream, the same before and after training


@dataclass
class FinetuneReport:
    """Outcome of `finetune_decoder`.

    Attributes:
        state_dict: the trained mask decoder's weights (on CPU), kept or not.
        metrics: val_miou_before/after and train_miou_before/after (mean IoU at the original image size over
            fixed sampled prompts), train_masks, val_masks, val_prompts, epochs, steps, final_loss, seconds.
        improved: the trained decoder scored higher on the held-out masks (then it replaced
            `segmenter.sam.mask_decoder` when `apply` was set).
    """

    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float | int] = field(default_factory=dict)
    improved: bool = False

    @property
    def reason(self) -> str:
        """Why the trained decoder is not to be served ("" when it improved)."""
        if self.improved:
            return ""
        return (f"held-out mIoU {self.metrics['val_miou_after']:.4f} is not above the served decoder's "
                f"{self.metrics['val_miou_before']:.4f}")


@dataclass
class _Example:
    image: np.ndarray
    mask: np.ndarray
    key: str  # image content hash, also the image_key given to the segmenter
    target: torch.Tensor | None = None  # (1, 1, h, w) soft mask in the decoder's low-res padded frame
    valid: torch.Tensor | None = None  # (1, 1, h, w) 1 inside the image, 0 in the padding


def split_indices(n: int, val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic train/validation split by a hash of each index (stable as the list grows).

    Returns:
        (train indices, validation indices), each non-empty when n >= 2.
    """
    h = [int(hashlib.sha1(f"mask:{i}".encode()).hexdigest()[:8], 16) / 2**32 for i in range(n)]
    val = [i for i in range(n) if h[i] < val_fraction]
    train = [i for i in range(n) if h[i] >= val_fraction]
    if n >= 2 and not val:
        val = [min(train, key=lambda i: h[i])]
        train.remove(val[0])
    if n >= 2 and not train:
        train = [max(val, key=lambda i: h[i])]
        val.remove(train[0])
    return train, val


def _targets(ex: _Example, entry: Entry, img_size: int, device: torch.device) -> None:
    ih, iw = entry.input_size
    m = ex.mask.astype(np.float32)
    interp = cv2.INTER_AREA if ih < m.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(m, (iw, ih), interpolation=interp)
    full = np.zeros((img_size, img_size), np.float32)
    full[:ih, :iw] = resized
    valid = np.zeros_like(full)
    valid[:ih, :iw] = 1.0
    # the decoder predicts at 1/4 of the padded input: average each 4x4 block
    ex.target = F.avg_pool2d(torch.from_numpy(full)[None, None], 4).to(device)
    ex.valid = (F.avg_pool2d(torch.from_numpy(valid)[None, None], 4) > 0.5).float().to(device)


def _losses(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
            alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per prompt loss (B,): min over the M proposals of 20 * focal + dice, plus MSE of the IoU head."""
    t = target.expand_as(logits)
    v = valid.expand_as(logits)
    n_valid = v.sum(dim=(2, 3)).clamp(min=1)
    p = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    focal = (alpha_t * (1 - p_t) ** gamma * bce * v).sum(dim=(2, 3)) / n_valid
    dice = 1 - (2 * (p * t * v).sum(dim=(2, 3)) + 1) / ((p * v).sum(dim=(2, 3)) + (t * v).sum(dim=(2, 3)) + 1)
    mask_loss = _FOCAL_WEIGHT * focal + dice  # (B, M)
    with torch.no_grad():
        pred = (logits > 0).float() * v
        gt = (t > 0.5).float() * v
        inter = (pred * gt).sum(dim=(2, 3))
        union = ((pred + gt) > 0).float().sum(dim=(2, 3))
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    iou_loss = F.mse_loss(iou_pred, iou, reduction="none").mean(dim=1)
    return mask_loss.min(dim=1).values + iou_loss


def _prompts(mask: np.ndarray, kind: str, rng: np.random.Generator):
    n_pos, n_neg, box = PROMPT_KINDS[kind]
    return mask_prompts(mask, rng, n_pos=n_pos, n_neg=n_neg, box_jitter=0.1 if box else None)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _evaluate(segmenter: Segmenter, examples: list[_Example], prompts: list[list], decoder: torch.nn.Module,
              entries: dict[str, Entry]) -> float:
    ious = []
    for ex, per_mask in zip(examples, prompts):
        for pts, labels, box in per_mask:
            # the held entry, not the cache: with more images than it holds, each pass would re-run the encoder
            r = segmenter.segment(ex.image, pts, labels, box, decoder=decoder, entry=entries[ex.key])
            ious.append(_iou(r.mask, ex.mask))
    return float(np.mean(ious)) if ious else float("nan")


def finetune_decoder(segmenter: Segmenter, examples: list[tuple[np.ndarray, np.ndarray]],
                     val_fraction: float = 0.25, epochs: int = 10, lr: float = 1e-4, seed: int = 0,
                     prompts_per_mask: int = 3, weight_decay: float = 1e-4, apply: bool = True,
                     max_seconds: float | None = None, prompt_kinds: tuple[str, ...] = tuple(PROMPT_KINDS),
                     start_decoder: torch.nn.Module | None = None) -> FinetuneReport:
    """Train a copy of a mask decoder on annotated masks and keep it if held-out masks improve.

    Args:
        segmenter: gives the (cached) image embeddings, the frozen encoders of its model `segmenter.sam` (left
            untouched) and the decoding used for evaluation.
        examples: (RGB uint8 image, (H, W) bool mask) pairs, one object per pair; an image may appear in several
            pairs (its embedding is computed once). Empty masks are skipped.
        val_fraction: share of masks held out (split by a hash of each mask's position among the non-empty
            ones; at least one each side).
        epochs: passes over the training images (one optimiser step per image, with all its masks).
        lr: AdamW learning rate.
        seed: seeds the prompt sampling and the order of images.
        prompts_per_mask: prompts sampled per mask and epoch, cycling through `prompt_kinds`; also the number
            of fixed evaluation prompts per mask.
        weight_decay: AdamW weight decay.
        apply: when the held-out mIoU improves, put the trained decoder in `segmenter.sam` (replacing the module,
            not editing it in place, so a decode running meanwhile sees one decoder or the other).
        max_seconds: stop training after this long (the report says how many epochs ran).
        prompt_kinds: names from `PROMPT_KINDS`: "box" (jittered box), "point" (one positive click, the three
            proposals of which only the best is trained), "points" (two positive clicks and a negative one).
        start_decoder: the decoder to start from and compare with (e.g. a served fine-tuned one; it is copied,
            not changed); default `segmenter.sam.mask_decoder`.

    Returns:
        The report; `segmenter.sam` is unchanged unless `improved` and `apply`.

    Raises:
        NotEnoughMasks: fewer than 2 non-empty masks.
    """
    sam = segmenter.sam
    kinds = list(prompt_kinds)
    if not kinds or any(k not in PROMPT_KINDS for k in kinds):
        raise ValueError(f"prompt_kinds must be among {list(PROMPT_KINDS)}, got {kinds}")
    t0 = time.perf_counter()
    items = [(np.asarray(img), np.asarray(m, dtype=bool)) for img, m in examples]
    kept = [i for i, (_, m) in enumerate(items) if m.any()]
    if len(kept) < 2:
        raise NotEnoughMasks(f"{len(kept)} non-empty mask(s): at least 2 are needed (one to train, one to check)")
    train_idx, val_idx = split_indices(len(kept), val_fraction)
    device = sam.device
    entries, exs = _embedded(segmenter, items, kept)
    train = [exs[i] for i in train_idx]
    val = [exs[i] for i in val_idx]

    def fixed_prompts(group: list[_Example], offset: int) -> list[list]:
        rng = np.random.default_rng(seed + _EVAL_SEED_OFFSET + offset)
        return [[_prompts(ex.mask, kinds[k % len(kinds)], rng) for k in range(prompts_per_mask)] for ex in group]

    val_prompts, train_prompts = fixed_prompts(val, 0), fixed_prompts(train, 1)
    original = start_decoder if start_decoder is not None else sam.mask_decoder
    metrics: dict[str, float | int] = {
        "val_miou_before": _evaluate(segmenter, val, val_prompts, original, entries),
        "train_miou_before": _evaluate(segmenter, train, train_prompts, original, entries),
    }

    decoder = copy.deepcopy(original).to(device).train()
    decoder.requires_grad_(True)
    opt = torch.optim.AdamW(decoder.parameters(), lr=lr, weight_decay=weight_decay)
    deadline = None if max_seconds is None else t0 + max_seconds
    steps, epochs_done, loss_value = _train(segmenter, decoder, opt, train, entries, kinds, prompts_per_mask, epochs,
                                            np.random.default_rng(seed), deadline)
    decoder.eval().requires_grad_(False)

    metrics["val_miou_after"] = _evaluate(segmenter, val, val_prompts, decoder, entries)
    metrics["train_miou_after"] = _evaluate(segmenter, train, train_prompts, decoder, entries)
    metrics.update(train_masks=len(train), val_masks=len(val), val_prompts=len(val) * prompts_per_mask,
                   images=len(entries), epochs=epochs_done, steps=steps, final_loss=loss_value,
                   seconds=round(time.perf_counter() - t0, 2))
    improved = bool(metrics["val_miou_after"] > metrics["val_miou_before"])
    if improved and apply:
        sam.mask_decoder = decoder
    state = {k: v.detach().cpu().clone() for k, v in decoder.state_dict().items()}
    return FinetuneReport(state_dict=state, metrics=metrics, improved=improved)


def _train(segmenter: Segmenter, decoder: torch.nn.Module, opt: torch.optim.Optimizer, train: list[_Example],
           entries: dict[str, Entry], kinds: list[str], prompts_per_mask: int, epochs: int, rng: np.random.Generator,
           deadline: float | None) -> tuple[int, int, float]:
    """Up to `epochs` passes over the training images (in a random order each), one optimiser step per image;
    no new epoch starts after `deadline` (a `time.perf_counter()` value). Returns (steps, epochs run, last epoch's
    mean loss)."""
    by_image: dict[str, list[_Example]] = {}
    for ex in train:
        by_image.setdefault(ex.key, []).append(ex)
    keys = sorted(by_image)
    with torch.no_grad():
        image_pe = segmenter.sam.prompt_encoder.get_dense_pe()
    steps = epochs_done = 0
    loss_value = float("nan")
    for _ in range(epochs):
        if deadline is not None and time.perf_counter() > deadline:
            break
        epoch_losses = []
        for key in (keys[j] for j in rng.permutation(len(keys))):
            prompts = [(ex, _prompts(ex.mask, kinds[k % len(kinds)], rng), kinds[k % len(kinds)])
                       for ex in by_image[key] for k in range(prompts_per_mask)]
            loss = _image_loss(segmenter, decoder, entries[key], prompts, image_pe)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            epoch_losses.append(float(loss.detach()))
        epochs_done += 1
        loss_value = float(np.mean(epoch_losses))
        log.info("decoder fine-tune: epoch %d/%d, loss %.4f", epochs_done, epochs, loss_value)
    return steps, epochs_done, loss_value


def _embedded(segmenter: Segmenter, items: list[tuple[np.ndarray, np.ndarray]], kept: list[int]
              ) -> tuple[dict[str, Entry], list[_Example]]:
    """The image embeddings (by image hash) and one `_Example` with its training target per kept mask."""
    sam = segmenter.sam
    entries: dict[str, Entry] = {}
    exs: list[_Example] = []
    hashed: dict[int, tuple[np.ndarray, str]] = {}  # by id of the caller's array: masks of one image share it
    for i in kept:
        image, mask = items[i]
        if id(image) not in hashed:
            rgb = as_rgb(image)
            hashed[id(image)] = (rgb, image_sha256(rgb))
        image, key = hashed[id(image)]
        if key not in entries:  # held for the whole run: 2 MiB per image at 1024 px, float16
            entries[key] = segmenter.embed(image, image_key=key)
        ex = _Example(image=image, mask=mask, key=key)
        if mask.shape != entries[key].original_size:
            raise ValueError(f"mask {i} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                             f"{entries[key].original_size[1]}x{entries[key].original_size[0]}")
        _targets(ex, entries[key], sam.image_encoder.img_size, sam.device)
        exs.append(ex)
    return entries, exs


def _image_loss(segmenter: Segmenter, decoder: torch.nn.Module, entry: Entry, prompts: list[tuple],
                image_pe: torch.Tensor) -> torch.Tensor:
    """The mean loss of `decoder` on one image's (example, prompt, prompt kind) triples, with gradients."""
    features = segmenter.features(entry)
    # one decoder call per prompt shape (a mask filling its whole image gets no negative point)
    groups: dict[tuple[str, int], list[tuple]] = {}
    for ex, prompt, kind in prompts:
        groups.setdefault((kind, len(prompt[0])), []).append((ex, prompt))
    losses = []
    for (kind, _), group in groups.items():
        pts = np.stack([g[1][0] for g in group]) if PROMPT_KINDS[kind][0] else None
        labels = np.stack([g[1][1] for g in group]) if pts is not None else None
        boxes = np.stack([g[1][2] for g in group]) if PROMPT_KINDS[kind][2] else None
        with torch.no_grad():
            sparse, dense = segmenter.encode_prompts(entry, pts, labels, boxes)
        low_res, iou_pred = decoder(image_embeddings=features, image_pe=image_pe, sparse_prompt_embeddings=sparse,
                                    dense_prompt_embeddings=dense, multimask_output=kind == "point")
        target = torch.cat([g[0].target for g in group])
        valid = torch.cat([g[0].valid for g in group])
        losses.append(_losses(low_res, iou_pred, target, valid))
    return torch.cat(losses).mean()


def save_decoder(state_dict: dict[str, torch.Tensor], out_dir: str | Path, meta: dict | None = None) -> Path:
    """Write a mask decoder's weights (and optional metadata as JSON beside them) atomically.

    Args:
        state_dict: `FinetuneReport.state_dict`.
        out_dir: folder to write `mask_decoder.pt` (and `mask_decoder.json`) into; created when missing.
        meta: e.g. the model id and the report's metrics.

    Returns:
        The path of the weights file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / DECODER_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
    os.replace(tmp, path)  # a reader never sees half a file
    if meta is not None:
        (out / "mask_decoder.json").write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def load_decoder(sam: torch.nn.Module, path: str | Path, in_place: bool = True) -> torch.nn.Module:
    """Load saved decoder weights into `sam.mask_decoder`, or into a copy of it.

    Args:
        sam: the model.
        path: the `mask_decoder.pt` file or the folder holding it.
        in_place: load into `sam.mask_decoder` itself; False: into a deep copy, `sam` left unchanged (a served
            version's decoder, passed to `Segmenter.segment(decoder=...)`).

    Returns:
        The decoder holding the loaded weights.

    Raises:
        EngineError: missing, unreadable, or made for another decoder shape.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DECODER_FILE
    if not path.is_file():
        raise EngineError(f"no mask decoder weights at {path}")
    try:
        state = torch.load(path, map_location=sam.device, weights_only=True)
        decoder = sam.mask_decoder if in_place else copy.deepcopy(sam.mask_decoder)
        decoder.load_state_dict(state, strict=True)
        return decoder
    except Exception as e:
        raise EngineError(f"cannot load mask decoder {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
