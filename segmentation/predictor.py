"""Masks from clicks and boxes: SAM's prompt encoder and mask decoder run against a cached image embedding.

Follows `segment_anything.SamPredictor` (same resize, normalisation, coordinate transform and mask upscaling) but
keeps no per-image state, so one `Segmenter` serves many images and threads; the embedding comes from the cache.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from detection.geometry import clip_xyxy

from .cache import EmbeddingCache, Entry
from .errors import PromptError

log = logging.getLogger(__name__)
# Boxes per mask-decoder call in segment_boxes: the decoder copies the image embedding once per box.
BOX_BATCH = 16


@dataclass
class MaskResult:
    """One predicted mask.

    Attributes:
        mask: (H, W) bool, at the original image size.
        score: SAM's predicted IoU of the mask (its own quality estimate, not a calibrated probability).
        low_res_logits: (h, w) float32 logits in the padded input frame (256x256 for 1024 px models), to feed back
            as `mask_input` on the next click.
    """

    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray


def image_sha256(image: np.ndarray) -> str:
    """Content hash of an image array (shape and dtype included, so a reshaped buffer is another image)."""
    h = hashlib.sha256(f"{image.shape}:{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def as_rgb(image: np.ndarray) -> np.ndarray:
    """The image as (H, W, 3) uint8: grey is repeated, an alpha channel dropped.

    Raises:
        ValueError: not an image array.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return image[:, :, :3]


def _check_points(points: np.ndarray | None, labels: np.ndarray | None, size: tuple[int, int]
                  ) -> tuple[np.ndarray | None, np.ndarray | None]:
    if points is None or len(points) == 0:
        return None, None
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.ones(len(points), np.int64) if labels is None else np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) != len(points):
        raise PromptError(f"{len(points)} points but {len(labels)} point labels")
    if not np.isin(labels, (0, 1)).all():
        raise PromptError("point labels must be 1 (positive) or 0 (negative)")
    h, w = size
    bad = ~np.isfinite(points).all(1) | (points[:, 0] < 0) | (points[:, 0] > w) | (points[:, 1] < 0) | (
        points[:, 1] > h)
    if bad.any():
        raise PromptError(f"point(s) {points[bad].round(1).tolist()} outside the {w}x{h} image")
    return points, labels


def _check_box(box: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    if box is None:
        return None
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise PromptError(f"a box is 4 numbers x1, y1, x2, y2, got {box.tolist()}")
    h, w = size
    # a box dragged past the image edge is still meant for what is inside: clip it
    clipped = np.array(clip_xyxy(box, w, h), dtype=np.float64)
    if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise PromptError(f"box {box.round(1).tolist()} has no area inside the {w}x{h} image")
    return clipped


class Segmenter:
    """Interactive SAM masks for many images, with their embeddings cached.

    Args:
        sam: a `Sam` model (from `engines.load_sam`).
        model_id: id of the model's image encoder (`engines.model_id`), the cache namespace.
        cache: where embeddings are kept; a default 512 MiB local cache when None.
    """

    def __init__(self, sam: torch.nn.Module, model_id: str, cache: EmbeddingCache | None = None) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide

        self.sam = sam
        self.model_id = model_id
        self.cache = cache if cache is not None else EmbeddingCache()
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self._inflight: dict[str, threading.Lock] = {}
        self._inflight_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self.sam.device

    def key(self, image: np.ndarray | None, image_key: str | None = None) -> str:
        """Cache key of an image: `f"{model_id}:{image_key or sha256}"`."""
        return f"{self.model_id}:{image_key or image_sha256(image)}"

    def cached(self, image_key: str, alias: Callable[[], str] | None = None) -> Entry | None:
        """The embedding cached under a caller's `image_key` (see `embed`), or None: nothing decoded or hashed.

        Args:
            alias: on a miss, gives another key the same image may be cached under (e.g. its file hash, where the
                caller keyed it so before); a hit there is cached under `image_key` too, for the next lookup.
        """
        entry = self.cache.get(self.key(None, image_key))
        if entry is None and alias is not None and (other := alias()) != image_key:
            entry = self.cache.get(self.key(None, other), count=False)
            if entry is not None:
                self.cache.put(self.key(None, image_key), entry)
        return entry

    def embed(self, image: np.ndarray, image_key: str | None = None, count: bool = True) -> Entry:
        """The image's embedding, from the cache or computed once (concurrent calls for one image wait for it).

        Args:
            image: (H, W, 3) RGB uint8.
            image_key: a stable id of the image content (e.g. its file hash) to skip hashing the pixels.
            count: count the cache lookup in its stats (off when the caller's `cached` already counted it).

        Returns:
            The cache entry (float16 embedding, original and resized sizes).
        """
        image = as_rgb(image)
        key = self.key(image, image_key)
        size = tuple(image.shape[:2])
        entry = self.cache.get(key, count=count)
        if entry is not None and entry.original_size == size:
            return entry
        if entry is not None:  # a caller's image_key reused for another image: trust the pixels
            log.warning("embedding for %s was made for a %s image, this one is %s: recomputing", key,
                        entry.original_size, size)
        with self._inflight_lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        with lock:
            entry = self.cache.get(key, count=False)  # another thread may have finished it while we waited
            if entry is None or entry.original_size != size:
                entry = self._compute(image)
                self.cache.put(key, entry)
        with self._inflight_lock:
            self._inflight.pop(key, None)
        return entry

    @torch.inference_mode()
    def _compute(self, image: np.ndarray) -> Entry:
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        features = self.sam.image_encoder(self.sam.preprocess(x.float()))
        # float16 here too, so a mask is the same whether the embedding was just computed or came from Redis
        return Entry(features.float().cpu().numpy().astype(np.float16), tuple(image.shape[:2]),
                     tuple(resized.shape[:2]))

    def features(self, entry: Entry) -> torch.Tensor:
        """The entry's embedding as a float32 tensor on the model's device."""
        return torch.from_numpy(np.asarray(entry.embedding, dtype=np.float32)).to(self.device)

    def encode_prompts(self, entry: Entry, points: np.ndarray | None, point_labels: np.ndarray | None,
                       boxes: np.ndarray | None, mask_input: np.ndarray | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse and dense prompt embeddings for checked prompts in original-image pixels.

        Args:
            entry: the image's cache entry (gives the sizes for the coordinate transform).
            points: (B, N, 2) or None; point_labels (B, N).
            boxes: (B, 4) xyxy or None.
            mask_input: (B, 1, h, w) low-res logits of a previous prediction, or None.

        Returns:
            (sparse (B, T, 256), dense (B, 256, g, g)).
        """
        dev = self.device
        pts = box_t = mask_t = None
        if points is not None:
            coords = self.transform.apply_coords(np.asarray(points, dtype=np.float64), entry.original_size)
            pts = (torch.as_tensor(coords, dtype=torch.float, device=dev),
                   torch.as_tensor(point_labels, dtype=torch.int, device=dev))
        if boxes is not None:
            box_t = torch.as_tensor(self.transform.apply_boxes(np.asarray(boxes, dtype=np.float64),
                                                               entry.original_size), dtype=torch.float, device=dev)
        if mask_input is not None:
            mask_t = torch.as_tensor(mask_input, dtype=torch.float, device=dev)
        return self.sam.prompt_encoder(points=pts, boxes=box_t, masks=mask_t)

    def decode(self, entry: Entry, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool,
               decoder: torch.nn.Module | None = None, features: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the mask decoder (the model's, or `decoder`, e.g. one being trained) for a batch of prompts.

        Returns:
            (low-res logits (B, M, h, w), predicted IoU (B, M)); M is 3 with `multimask`, else 1.
        """
        decoder = decoder if decoder is not None else self.sam.mask_decoder
        return decoder(image_embeddings=features if features is not None else self.features(entry),
                       image_pe=self.sam.prompt_encoder.get_dense_pe(), sparse_prompt_embeddings=sparse,
                       dense_prompt_embeddings=dense, multimask_output=multimask)

    def upscale(self, entry: Entry, low_res: torch.Tensor) -> torch.Tensor:
        """Logits (B, M, h, w) in the padded input frame -> (B, M, H, W) at the original size."""
        return self.sam.postprocess_masks(low_res, entry.input_size, entry.original_size)

    def segment(self, image: np.ndarray | None, points: np.ndarray | None = None, point_labels: np.ndarray | None = None,
                box: np.ndarray | None = None, multimask: bool | None = None, mask_input: np.ndarray | None = None,
                image_key: str | None = None, decoder: torch.nn.Module | None = None,
                entry: Entry | None = None) -> MaskResult:
        """One mask for the prompts on an image.

        Args:
            image: (H, W, 3) RGB uint8; None when `entry` is given (a click on an image whose embedding is cached
                needs neither its pixels nor their hash).
            points: (N, 2) pixel x, y of the clicks, or None.
            point_labels: (N,) 1 positive, 0 negative (default all positive).
            box: x1, y1, x2, y2 in pixels (clipped to the image), or None.
            multimask: let SAM propose 3 masks and keep the one with the highest predicted IoU. None: only for a
                single positive click without box, which is ambiguous (part or whole?), as SAM recommends.
            mask_input: (h, w) `low_res_logits` of the previous click's result, to refine it.
            image_key: stable id of the image content (see `embed`).
            decoder: a mask decoder to use instead of the model's (evaluation of a retrained one).
            entry: the image's embedding (from `embed` or `cached`) when the caller already holds it: the cache is
                not asked.

        Returns:
            The mask at the original size, its predicted IoU and low-res logits.

        Raises:
            PromptError: no prompt, only negative points, points outside the image, a box without area.
        """
        if image is None and entry is None:
            raise ValueError("segment needs the image or its embedding")
        image = None if image is None else as_rgb(image)
        size = entry.original_size if image is None else image.shape[:2]
        pts, labels = _check_points(points, point_labels, size)
        box = _check_box(box, size)
        if pts is None and box is None:
            raise PromptError("no prompt: give at least one point or a box")
        if box is None and not (labels == 1).any():
            raise PromptError("only negative points: add a positive point or a box to say what to segment")
        if multimask is None:
            multimask = box is None and len(pts) == 1
        if entry is None:
            entry = self.embed(image, image_key)
        elif entry.original_size != tuple(size):
            raise ValueError(f"the embedding was made for a {entry.original_size} image, this one is {tuple(size)}")
        with torch.inference_mode():
            sparse, dense = self.encode_prompts(
                entry, None if pts is None else pts[None], None if labels is None else labels[None],
                None if box is None else box[None], None if mask_input is None else np.asarray(mask_input)[None, None])
            low_res, iou = self.decode(entry, sparse, dense, multimask, decoder)
            best = int(iou[0].argmax())
            logits = self.upscale(entry, low_res[:, best:best + 1])
        return MaskResult(mask=(logits[0, 0] > self.sam.mask_threshold).cpu().numpy(), score=float(iou[0, best]),
                          low_res_logits=low_res[0, best].float().cpu().numpy())

    def segment_boxes(self, image: np.ndarray, boxes: np.ndarray, image_key: str | None = None,
                      decoder: torch.nn.Module | None = None) -> list[MaskResult]:
        """One mask per box (e.g. to turn detector boxes into masks), batched through the decoder.

        Args:
            image: (H, W, 3) RGB uint8.
            boxes: (K, 4) x1, y1, x2, y2 pixels (each clipped to the image).
            image_key: stable id of the image content (see `embed`).
            decoder: a mask decoder to use instead of the model's (a served version's trained one).

        Returns:
            K results in the order of `boxes`.

        Raises:
            PromptError: a box without area inside the image (its index is in the message).
        """
        image = as_rgb(image)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        checked = []
        for i, b in enumerate(boxes):
            try:
                checked.append(_check_box(b, image.shape[:2]))
            except PromptError as e:
                raise PromptError(f"box {i}: {e}") from None
        entry = self.embed(image, image_key)
        out: list[MaskResult] = []
        with torch.inference_mode():
            features = self.features(entry)
            for start in range(0, len(checked), BOX_BATCH):
                batch = np.stack(checked[start:start + BOX_BATCH])
                sparse, dense = self.encode_prompts(entry, None, None, batch)
                low_res, iou = self.decode(entry, sparse, dense, False, decoder, features=features)
                masks = self.upscale(entry, low_res) > self.sam.mask_threshold
                for k in range(len(batch)):
                    out.append(MaskResult(mask=masks[k, 0].cpu().numpy(), score=float(iou[k, 0]),
                                          low_res_logits=low_res[k, 0].float().cpu().numpy()))
        return out
