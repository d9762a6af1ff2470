"""Label Studio's brush RLE of a mask, through the faster of two encoders that write the same bytes.

label-studio-sdk's `encode_rle` costs time per run (a Python loop building a bit string): ~15 ms for a smooth
640x480 mask, but ~0.8 s for a speckled one and ~6 s for a speckled 1920x1080 one. `label-studio-brush-rle-rs`
(Rust) costs time per pixel (its binding copies the 4-byte-per-pixel array element by element): ~40 ms at
640x480 and ~0.25-0.37 s at 1920x1080 whatever the mask. Measured on 2 cores (`bench/segmentation_bench.py`,
`rle` in bench/results/segmentation.json), the two break even near one run per 50 pixels: smooth masks (what SAM
and YOLO-seg mostly draw) go to the SDK, speckled ones to Rust when it is installed. Both give identical RLE
(tests/backends/test_brush_rle.py checks random masks).
"""
from __future__ import annotations

import numpy as np
from label_studio_sdk.converter.brush import encode_rle

try:  # optional: a wheel of a Rust port; without it every mask goes to the SDK
    from label_studio_brush_rle_rs import encode_rle as _rust_encode_rle
except ImportError:  # pragma: no cover - depends on what is installed
    _rust_encode_rle = None

WORD_SIZE = 8
RLE_SIZES = [3, 4, 8, 16]  # the SDK's defaults, which Label Studio's front end reads
# runs per pixel above which the Rust encoder is faster (measured break-even ~0.02; see the module docstring)
RUST_FROM_RUNS_PER_PIXEL = 0.02


def runs(mask: np.ndarray) -> int:
    """The number of runs of equal pixels in the row-major mask (what the SDK's encoder loops over)."""
    flat = np.asarray(mask).reshape(-1)
    return int(np.count_nonzero(flat[1:] != flat[:-1])) + 1 if flat.size else 0


def rgba(mask: np.ndarray) -> np.ndarray:
    """A (H, W) bool mask as Label Studio's flattened RGBA bytes: 0 or 255, each pixel 4 times."""
    return np.repeat((np.asarray(mask, dtype=bool).reshape(-1).view(np.uint8) * 255), 4)


def sdk_encode(mask: np.ndarray) -> list[int]:
    """The SDK's brush RLE of a (H, W) bool mask (`label_studio_sdk.converter.brush.mask2rle`)."""
    return encode_rle(rgba(mask), WORD_SIZE, RLE_SIZES)


def rust_encode(mask: np.ndarray) -> list[int]:
    """The Rust port's brush RLE of a (H, W) bool mask.

    Raises:
        RuntimeError: label-studio-brush-rle-rs is not installed.
    """
    if _rust_encode_rle is None:
        raise RuntimeError("label-studio-brush-rle-rs is not installed")
    # bytes, not the numpy array: its binding reads bytes ~3x faster (measured)
    return list(_rust_encode_rle(rgba(mask).tobytes(), WORD_SIZE, RLE_SIZES))


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """A (H, W) bool mask in Label Studio's brush RLE, through the encoder that is faster for this mask."""
    mask = np.asarray(mask, dtype=bool)
    if _rust_encode_rle is not None and runs(mask) > RUST_FROM_RUNS_PER_PIXEL * mask.size:
        return rust_encode(mask)
    return sdk_encode(mask)
