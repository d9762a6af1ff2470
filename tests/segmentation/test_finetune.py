"""Mask-decoder retraining on coco128 masks (COCO polygons), with MobileSAM of random weights at 128 px.

No real weights here: held-out gains from a random image encoder mean little, so the learning test checks that
the decoder can fit its training masks (the gradient path works end to end) and that the original decoder is
left alone unless the new one wins on held-out masks.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from segmentation.cache import EmbeddingCache
from segmentation.engines import load_sam, model_id
from segmentation.errors import EngineError, NotEnoughMasks
from segmentation.finetune import finetune_decoder, load_decoder, save_decoder, split_indices
from segmentation.predictor import Segmenter
from tests.segmentation.conftest import coco_examples

SIZE = 128  # the decoder's cost grows with the embedding grid: 8x8 here keeps ~150 training steps to seconds


@pytest.fixture(scope="module")
def small_sam() -> torch.nn.Module:
    torch.manual_seed(0)
    return load_sam("vit_t", None, device="cpu", image_size=SIZE, random_init=True)


@pytest.fixture(scope="module")
def cache() -> EmbeddingCache:
    return EmbeddingCache()


@pytest.fixture(scope="module")
def examples(datasets_dir) -> list[tuple[np.ndarray, np.ndarray]]:
    """One large object (>= 5 % of the image) from each of the first 4 such coco128 images."""
    ex = coco_examples(datasets_dir, n_images=4, min_area=0.05)
    assert len(ex) == 4
    return ex


def decoder_state(sam) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in sam.mask_decoder.state_dict().items()}


def test_split_is_deterministic():
    train, val = split_indices(20, 0.25)
    assert (train, val) == split_indices(20, 0.25)
    assert sorted(train + val) == list(range(20)) and 1 <= len(val) <= 10
    assert split_indices(21, 0.25)[1][:len(val)] == val  # a new example does not move the old ones
    for n in (2, 3):
        tr, va = split_indices(n, 0.25)
        assert tr and va
    assert split_indices(2, 0.0)[1] and split_indices(2, 1.0)[0]


def test_not_enough_masks(small_sam, cache, examples):
    seg = Segmenter(small_sam, model_id("vit_t", None, small_sam), cache)
    image, mask = examples[0]
    with pytest.raises(NotEnoughMasks):
        finetune_decoder(seg, [(image, mask)])
    with pytest.raises(NotEnoughMasks):
        finetune_decoder(seg, [(image, mask), (image, np.zeros_like(mask))])


def test_runs_and_leaves_decoder_alone(small_sam, cache, examples):
    seg = Segmenter(small_sam, model_id("vit_t", None, small_sam), cache)
    before = decoder_state(small_sam)
    decoder = small_sam.mask_decoder
    report = finetune_decoder(seg, examples + [(examples[0][0], np.zeros_like(examples[0][1]))],
                              epochs=2, lr=1e-4, apply=False)
    m = report.metrics
    for key in ("val_miou_before", "val_miou_after", "train_miou_before", "train_miou_after"):
        assert 0.0 <= m[key] <= 1.0
    assert (m["train_masks"], m["val_masks"], m["epochs"], m["images"]) == (3, 1, 2, 4)  # the empty mask skipped
    assert m["val_prompts"] == 3 and m["steps"] == 2 * 3 and np.isfinite(m["final_loss"])
    assert small_sam.mask_decoder is decoder
    assert all(torch.equal(before[k], v) for k, v in small_sam.mask_decoder.state_dict().items())
    assert report.state_dict.keys() == before.keys()
    assert not all(torch.equal(before[k], v) for k, v in report.state_dict.items())  # it did train
    again = finetune_decoder(seg, examples, epochs=2, lr=1e-4, apply=False)
    assert again.metrics["final_loss"] == m["final_loss"]  # seeded: same run


def test_decoder_learns_training_masks(small_sam, cache, examples):
    """Box prompts, 150 steps: training-set mIoU must rise clearly (random weights start near 0.07)."""
    sam = copy.deepcopy(small_sam)
    seg = Segmenter(sam, model_id("vit_t", None, sam), cache)
    original = sam.mask_decoder
    before = decoder_state(sam)
    report = finetune_decoder(seg, examples, epochs=50, lr=1e-3, prompts_per_mask=2, prompt_kinds=("box",))
    m = report.metrics
    assert m["train_miou_after"] > m["train_miou_before"] + 0.3, m
    assert m["train_miou_after"] > 0.5, m
    if report.improved:  # kept: the model now uses the new decoder, the old module untouched
        assert sam.mask_decoder is not original and not sam.mask_decoder.training
        assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    else:
        assert sam.mask_decoder is original


def test_save_and_load(small_sam, tmp_path):
    torch.manual_seed(3)
    other = load_sam("vit_t", None, device="cpu", image_size=SIZE, random_init=True)
    path = save_decoder(other.mask_decoder.state_dict(), tmp_path / "round1", meta={"model_id": "x", "miou": 0.5})
    assert path.name == "mask_decoder.pt"
    assert json.loads((tmp_path / "round1" / "mask_decoder.json").read_text())["miou"] == 0.5
    target = copy.deepcopy(small_sam)
    load_decoder(target, tmp_path / "round1")
    assert all(torch.equal(other.mask_decoder.state_dict()[k], v)
               for k, v in target.mask_decoder.state_dict().items())
    with pytest.raises(EngineError, match="no mask decoder"):
        load_decoder(target, tmp_path / "missing")
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(EngineError, match="cannot load mask decoder"):
        load_decoder(target, tmp_path / "bad.pt")
