"""Streaming images batch by batch within a pixel budget."""
from __future__ import annotations

from PIL import Image

from detection.batches import PixelBudget, pixel_batches, release_memory, stream_images


def test_pixel_batches_bound_count_and_pixels():
    assert pixel_batches([1, 1, 1, 1, 1], 2, 100) == [[0, 1], [2, 3], [4]]
    assert pixel_batches([60, 30, 20, 200, 10], 8, 100) == [[0, 1], [2], [3], [4]]
    assert pixel_batches([], 4, 100) == []


def test_budget_admits_in_order_until_spent():
    budget = PixelBudget(10)
    assert [budget.take(n) for n in (4, 4, 4, 2)] == [True, True, False, True]


def test_stream_images_sizes_first_then_decodes_batch_by_batch(tmp_path):
    files = []
    for i, size in enumerate([(40, 30), (40, 30), (40, 30), (40, 30)]):
        Image.new("RGB", size, (i, 0, 0)).save(tmp_path / f"{i}.png")
        files.append({"image": tmp_path / f"{i}.png"})
    (tmp_path / "bad.png").write_bytes(b"not an image")
    files[1] = {"image": tmp_path / "bad.png"}
    files.insert(2, None)  # an item left out by the caller
    out = [(idx, [{k: v.array.shape for k, v in im.items()} for im in images], errors)
           for idx, images, errors in stream_images(files, 2, 10_000, 3 * 1200 - 1)]
    # sized first: the bad file and the item over the budget come first, with their reasons
    assert out[0][0] == [1, 4] and "not an image" in out[0][2][0] and "MAX_REQUEST_PIXELS" in out[0][2][1]
    assert [o[0] for o in out[1:]] == [[0, 3]] and out[1][1] == [{"image": (30, 40, 3)}] * 2
    assert out[1][2] == [None, None]
    release_memory()  # callable anywhere
    held = []
    for _, images, _ in stream_images(files[:1], 1, 10_000, 10_000):
        held.append(images)
    assert held == [[]]  # emptied once the caller moved on
