"""The brush RLE encoders write the same bytes as label-studio-sdk's `mask2rle`, whichever is chosen."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from backends import brush_rle
from backends.regions import mask_to_rle, rle_to_mask


def _masks(rng: np.random.Generator) -> list[np.ndarray]:
    """Smooth blobs, speckle at several densities, empty, full, one pixel, and runs longer than 2**16 bytes."""
    out = []
    for h, w in ((1, 1), (7, 13), (120, 160), (480, 640)):
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(blob, (w // 2, h // 2), (max(w // 3, 1), max(h // 4, 1)), 30, 0, 360, 1, -1)
        out += [blob.astype(bool), np.zeros((h, w), bool), np.ones((h, w), bool)]
        out += [rng.random((h, w)) < p for p in (0.001, 0.02, 0.5)]
    long_run = np.zeros((300, 300), bool)  # 90,000 pixels of one value: 360,000 bytes, several 2**16 chunks
    long_run[-1, -1] = True
    return out + [long_run]


def test_chosen_encoder_matches_the_sdk_on_random_masks():
    for mask in _masks(np.random.default_rng(0)):
        expected = mask2rle(mask.astype(np.uint8) * 255)
        got = mask_to_rle(mask)
        assert got == expected, mask.shape
        assert np.array_equal(rle_to_mask(got, mask.shape[1], mask.shape[0]), mask)


@pytest.mark.skipif(brush_rle._rust_encode_rle is None, reason="label-studio-brush-rle-rs is not installed")
def test_rust_encoder_writes_the_sdks_bytes():
    for mask in _masks(np.random.default_rng(1)):
        rust = brush_rle.rust_encode(mask)
        assert rust == brush_rle.sdk_encode(mask), mask.shape
        assert np.array_equal(np.asarray(decode_rle(rust)).reshape(*mask.shape, 4)[:, :, 3] > 0, mask)


@pytest.mark.skipif(brush_rle._rust_encode_rle is None, reason="label-studio-brush-rle-rs is not installed")
def test_speckled_masks_go_to_rust_and_smooth_ones_to_the_sdk(monkeypatch):
    used = []
    monkeypatch.setattr(brush_rle, "rust_encode", lambda m: used.append("rust") or [])
    monkeypatch.setattr(brush_rle, "sdk_encode", lambda m: used.append("sdk") or [])
    smooth = np.zeros((100, 100), bool)
    smooth[20:80, 30:60] = True
    brush_rle.mask_to_rle(smooth)
    brush_rle.mask_to_rle(np.random.default_rng(0).random((100, 100)) < 0.5)
    assert used == ["sdk", "rust"]


def test_runs_counts_changes_in_row_major_order():
    assert brush_rle.runs(np.zeros((3, 4), bool)) == 1
    assert brush_rle.runs(np.array([[0, 1], [1, 0]], bool)) == 3
    assert brush_rle.runs(np.zeros((0, 4), bool)) == 0
