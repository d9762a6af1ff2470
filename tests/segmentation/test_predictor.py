"""Segmenter with MobileSAM (vit_t) of random weights at 256 px: no real weights here, so these tests check the
plumbing (caching, shapes, prompt handling, equivalence with SamPredictor), not mask quality."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from segmentation.cache import EmbeddingCache, Entry
from segmentation.engines import model_id
from segmentation.errors import PromptError
from segmentation.predictor import Segmenter, image_sha256

H, W = 300, 500  # non-square, so a swapped x/y or width/height shows


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[80:200, 150:350] = (200, 40, 40)  # an "object"
    return img


@pytest.fixture
def encoder_calls(sam_t):
    """How many times the image encoder ran during the test: [count]."""
    calls = [0]

    def hook(*_):
        calls[0] += 1

    handle = sam_t.image_encoder.register_forward_hook(hook)
    yield calls
    handle.remove()


def test_embedding_computed_once_per_image(sam_t, image, encoder_calls):
    seg = Segmenter(sam_t, model_id("vit_t", None, sam_t), EmbeddingCache())
    calls = encoder_calls
    seg.segment(image, np.array([[250, 140]]), np.array([1]))
    seg.segment(image, np.array([[250, 140], [100, 50]]), np.array([1, 0]))
    seg.segment(image, box=np.array([150, 80, 350, 200]))
    assert calls[0] == 1
    stats = seg.cache.stats()
    assert stats["misses"] == 1 and stats["hits"] >= 2 and stats["items"] == 1
    other = image.copy()
    other[0, 0] = 0
    seg.segment(other, np.array([[250, 140]]))
    assert calls[0] == 2  # another image content, another embedding
    seg.segment(other, np.array([[250, 140]]), image_key="file-sha")
    seg.segment(image, np.array([[250, 140]]), image_key="file-sha")  # the caller's key is trusted
    assert calls[0] == 3


def test_cached_finds_an_alias_key_and_keeps_it_under_the_asked_one(segmenter, image, encoder_calls):
    entry = segmenter.embed(image, image_key="content-abc")
    asked = []
    assert segmenter.cached("media-1") is None
    assert segmenter.cached("media-1", alias=lambda: asked.append(1) or "content-abc") is entry
    assert segmenter.cached("media-1") is entry and asked == [1]  # stored under the asked key: no alias needed
    assert segmenter.cached("media-2", alias=lambda: "content-other") is None
    assert encoder_calls[0] == 1


def test_reused_image_key_with_other_size_recomputes(segmenter, image, encoder_calls):
    segmenter.segment(image, np.array([[10, 10]]), image_key="task-1")
    small = image[:100, :200].copy()
    r = segmenter.segment(small, np.array([[10, 10]]), image_key="task-1")
    assert r.mask.shape == (100, 200) and encoder_calls[0] == 2
    assert segmenter.embed(small, image_key="task-1").original_size == (100, 200)


def test_mask_result(segmenter, image):
    r = segmenter.segment(image, np.array([[250, 140]]), np.array([1]))
    assert r.mask.shape == (H, W) and r.mask.dtype == bool
    assert isinstance(r.score, float)
    assert r.low_res_logits.shape == (64, 64)  # 256 px input / 4
    box = segmenter.segment(image, box=np.array([150, 80, 350, 200]))
    assert box.mask.shape == (H, W)
    both = segmenter.segment(image, np.array([[250, 140]]), np.array([1]), box=np.array([150, 80, 350, 200]))
    assert both.mask.shape == (H, W)
    refined = segmenter.segment(image, np.array([[250, 140], [160, 90]]), np.array([1, 1]),
                                mask_input=r.low_res_logits)
    assert refined.mask.shape == (H, W)
    gray = segmenter.segment(image[:, :, 0], np.array([[250, 140]]))
    assert gray.mask.shape == (H, W)


def test_negative_point_changes_result(segmenter, image):
    pos = segmenter.segment(image, np.array([[250, 140], [200, 120]]), np.array([1, 1]))
    neg = segmenter.segment(image, np.array([[250, 140], [200, 120]]), np.array([1, 0]))
    assert not np.allclose(pos.low_res_logits, neg.low_res_logits)


def test_single_click_keeps_best_of_three(segmenter, image):
    point = np.array([[250, 140]])
    auto = segmenter.segment(image, point, np.array([1]))
    entry = segmenter.embed(image)
    with torch.inference_mode():
        sparse, dense = segmenter.encode_prompts(entry, point[None], np.array([[1]]), None)
        _, iou = segmenter.decode(entry, sparse, dense, multimask=True)
    assert auto.score == pytest.approx(float(iou.max()), abs=1e-6)
    single = segmenter.segment(image, point, np.array([1]), multimask=False)
    assert not np.allclose(single.low_res_logits, auto.low_res_logits)


def test_same_as_sam_predictor(sam_t, image):
    """From the same (float32) embedding, masks, scores and logits equal mobile_sam's SamPredictor's."""
    from mobile_sam import SamPredictor

    predictor = SamPredictor(sam_t)
    predictor.set_image(image)
    cache = EmbeddingCache()
    seg = Segmenter(sam_t, "ref", cache)
    cache.put(seg.key(image, "img"), Entry(predictor.features.numpy(), predictor.original_size,
                                           predictor.input_size))
    points, labels, box = np.array([[250, 140], [120, 60]]), np.array([1, 0]), np.array([140, 70, 360, 210])
    masks, scores, logits = predictor.predict(points, labels, box, multimask_output=False)
    r = seg.segment(image, points, labels, box, image_key="img")
    np.testing.assert_array_equal(r.mask, masks[0])
    assert r.score == pytest.approx(float(scores[0]), abs=1e-5)
    np.testing.assert_allclose(r.low_res_logits, logits[0], atol=1e-4)
    # our own embedding is the same, stored as float16
    computed = Segmenter(sam_t, "ref2", EmbeddingCache()).embed(image)
    np.testing.assert_allclose(computed.embedding.astype(np.float32), predictor.features.numpy(), atol=2e-2,
                               rtol=1e-2)
    assert computed.input_size == predictor.input_size and computed.original_size == (H, W)


def test_prompt_errors(segmenter, image):
    with pytest.raises(PromptError, match="no prompt"):
        segmenter.segment(image)
    with pytest.raises(PromptError, match="no prompt"):
        segmenter.segment(image, np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(PromptError, match="outside the 500x300 image"):
        segmenter.segment(image, np.array([[600, 10]]))
    with pytest.raises(PromptError, match="outside"):
        segmenter.segment(image, np.array([[10, -1]]))
    with pytest.raises(PromptError, match="only negative"):
        segmenter.segment(image, np.array([[10, 10]]), np.array([0]))
    with pytest.raises(PromptError, match="labels"):
        segmenter.segment(image, np.array([[10, 10], [20, 20]]), np.array([1]))
    with pytest.raises(PromptError, match="no area"):
        segmenter.segment(image, box=np.array([600, 10, 700, 50]))
    with pytest.raises(PromptError, match="4 numbers"):
        segmenter.segment(image, box=np.array([1, 2, 3]))
    # a box dragged past the edge is clipped
    clipped = segmenter.segment(image, box=np.array([-50, 100, 450, 400]))
    inside = segmenter.segment(image, box=np.array([0, 100, 450, 300]))
    np.testing.assert_array_equal(clipped.mask, inside.mask)
    # points on the last pixel edge are inside
    segmenter.segment(image, np.array([[W, H]]))


def test_segment_boxes_matches_single(segmenter, image, monkeypatch):
    import segmentation.predictor as predictor

    monkeypatch.setattr(predictor, "BOX_BATCH", 2)  # 3 boxes: one full batch and one partial
    boxes = np.array([[150, 80, 350, 200], [0, 0, 100, 100], [300, 150, 520, 320]])
    results = segmenter.segment_boxes(image, boxes)
    assert len(results) == 3
    for box, r in zip(boxes, results):
        one = segmenter.segment(image, box=box)
        assert r.score == pytest.approx(one.score, abs=1e-4)
        assert (r.mask != one.mask).mean() < 1e-3
    assert segmenter.segment_boxes(image, np.zeros((0, 4))) == []
    with pytest.raises(PromptError, match="box 1"):
        segmenter.segment_boxes(image, np.array([[0, 0, 10, 10], [900, 900, 950, 950]]))


def test_segment_boxes_with_a_versions_decoder(segmenter, image):
    """Automatic masks are refined by a served version's decoder when one is given (the model's stays as it was)."""
    import copy

    box = np.array([[150, 80, 350, 200]])
    other = copy.deepcopy(segmenter.sam.mask_decoder)
    with torch.no_grad():
        for param in other.parameters():
            param.mul_(-1.0)
    same = segmenter.segment_boxes(image, box, decoder=copy.deepcopy(segmenter.sam.mask_decoder))[0]
    base = segmenter.segment_boxes(image, box)[0]
    changed = segmenter.segment_boxes(image, box, decoder=other)[0]
    assert same.score == pytest.approx(base.score, abs=1e-5)
    assert changed.score != pytest.approx(base.score, abs=1e-3)
    assert changed.score == pytest.approx(segmenter.segment(image, box=box[0], decoder=other).score, abs=1e-4)


def test_second_worker_uses_redis_embedding(sam_t, image, redis_url, encoder_calls):
    """Two Segmenters with their own memory but one Redis stand for two worker processes."""
    mid = model_id("vit_t", None, sam_t)
    first = Segmenter(sam_t, mid, EmbeddingCache(redis_url=redis_url))
    a = first.segment(image, np.array([[250, 140]]))
    assert encoder_calls[0] == 1
    second = Segmenter(sam_t, mid, EmbeddingCache(redis_url=redis_url))
    b = second.segment(image, np.array([[250, 140]]))
    assert encoder_calls[0] == 1 and second.cache.stats()["redis_hits"] == 1
    np.testing.assert_array_equal(a.mask, b.mask)  # float16 on both sides: the same mask
    assert a.score == b.score


def test_image_sha256():
    a = np.zeros((4, 6, 3), np.uint8)
    assert image_sha256(a) == image_sha256(a.copy())
    assert image_sha256(a) != image_sha256(a.reshape(6, 4, 3))
