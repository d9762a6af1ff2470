"""The image pipeline: items loaded by a background thread in order, batched by shape, at most K decoded at once."""
from __future__ import annotations

import threading
import weakref

import pytest
from PIL import Image

import detection.pipeline as pipeline
from detection.pipeline import Holding, ImagePipeline


@pytest.fixture
def files(tmp_path):
    """Eight items: 4:3 and 3:4 images mixed, a broken file at 3, an item without media at 5."""
    out: list = []
    for i in range(8):
        size = (40, 30) if i % 3 else (30, 40)
        Image.new("RGB", size, (i, 0, 0)).save(tmp_path / f"{i}.png")
        out.append({"image": tmp_path / f"{i}.png"})
    (tmp_path / "bad.png").write_bytes(b"not an image")
    out[3] = {"image": tmp_path / "bad.png"}
    out[5] = "no field 'image'"
    return out


@pytest.fixture
def live(monkeypatch):
    """Weak references to every decoded array: how many are alive is counted, not timed."""
    refs: list = []
    real = pipeline.load_image

    def tracked(*args, **kwargs):
        array = real(*args, **kwargs)
        refs.append(weakref.ref(array))
        return array

    monkeypatch.setattr(pipeline, "load_image", tracked)
    return lambda: sum(r() is not None for r in refs)


def _run(files, batch=4, hold=6, same_shape=True, request_pixels=10**9, on_batch=None):
    pipe = ImagePipeline(len(files), files.__getitem__, hold, 10_000, request_pixels)
    out = []
    for items in pipe.batches(batch, same_shape):
        if on_batch is not None:
            on_batch(pipe, items)
        out.append([(it.index, it.error, {k: v.array.shape for k, v in it.images.items()}) for it in items])
    return pipe, out


def test_items_come_in_order_each_error_its_own(files):
    _, out = _run(files)
    flat = [entry for group in out for entry in group]
    assert [i for i, _, _ in flat] == list(range(8))  # load order is item order
    errors = {i: e for i, e, _ in flat}
    assert "not an image" in errors[3] and errors[5] == "no field 'image'"
    assert all(errors[i] is None for i in (0, 1, 2, 4, 6, 7))
    assert flat[1][2] == {"image": (30, 40, 3)} and flat[0][2] == {"image": (40, 30, 3)}
    for group in out:  # an error alone; a batch holds one shape (CPU)
        assert len(group) == 1 or all(e is None for _, e, _ in group)
        assert len({str(shapes) for _, _, shapes in group}) == 1


def test_batches_of_one_shape_on_cpu_and_mixed_on_gpu(tmp_path):
    items = []
    for i, size in enumerate([(40, 30), (40, 30), (30, 40), (30, 40), (40, 30)]):
        Image.new("RGB", size).save(tmp_path / f"{i}.png")
        items.append({"image": tmp_path / f"{i}.png"})
    for same_shape, expected in ((True, [[0, 1], [2, 3], [4]]), (False, [[0, 1, 2, 3], [4]])):
        pipe = ImagePipeline(len(items), items.__getitem__, 8, 10_000, 10**9)
        pipe.start()
        pipe._thread.join(10)  # everything loaded before the first batch: the grouping does not depend on timing
        assert [[it.index for it in g] for g in pipe.batches(4, same_shape)] == expected


def test_gpu_batches_wait_to_be_full(tmp_path):
    items = []
    for i in range(5):
        Image.new("RGB", (40, 30) if i % 2 else (30, 40)).save(tmp_path / f"{i}.png")
        items.append({"image": tmp_path / f"{i}.png"})
    release = threading.Event()

    def slow(i):  # item 2 arrives late: a CPU batch goes without it, a GPU batch waits for it
        if i == 2:
            release.wait(10)
        return items[i]

    pipe = ImagePipeline(len(items), slow, 8, 10_000, 10**9)
    groups = pipe.batches(4, same_shape=False, fill=True)
    threading.Timer(0.3, release.set).start()
    assert [[it.index for it in g] for g in groups] == [[0, 1, 2, 3], [4]]
    # a batch that would need more than may be held goes as it is instead of waiting for ever
    pipe = ImagePipeline(len(items), items.__getitem__, 2, 10_000, 10**9)
    assert [[it.index for it in g] for g in pipe.batches(4, same_shape=False, fill=True)] == [[0, 1], [2, 3], [4]]


def test_at_most_hold_decoded_images_alive(files, monkeypatch):
    refs, peak = [], [0]
    real = pipeline.load_image

    def tracked(*args, **kwargs):
        array = real(*args, **kwargs)
        refs.append(weakref.ref(array))
        peak[0] = max(peak[0], sum(r() is not None for r in refs))  # counted at every decode
        return array

    monkeypatch.setattr(pipeline, "load_image", tracked)

    def slow_consumer(pipe, items):
        # let the loader run ahead as far as it may (until the holding is full or it is done)
        for _ in range(500):
            if pipe.holding.count >= 3 or not pipe._thread.is_alive():
                break
            threading.Event().wait(0.01)

    pipe, out = _run(files, batch=2, hold=3, on_batch=slow_consumer)
    assert peak[0] == 3 and pipe.holding.peak == 3  # the bound is reached and never passed
    assert all(r() is None for r in refs) and pipe.holding.count == 0  # all dropped at the end
    assert sum(len(g) for g in out) == 8


def test_pixel_budget_spent_in_order(files):
    _, out = _run(files, request_pixels=3 * 1200)
    errors = {i: e for group in out for i, e, _ in group}
    assert [i for i, e in errors.items() if e is None] == [0, 1, 2]
    assert all("MAX_REQUEST_PIXELS" in errors[i] for i in (4, 6, 7))


def test_a_caller_that_stops_early_frees_everything(files, live):
    pipe = ImagePipeline(len(files), files.__getitem__, 3, 10_000, 10**9)
    gen = pipe.batches(1)
    next(gen)
    gen.close()
    pipe._thread.join(5)
    assert not pipe._thread.is_alive() and live() == 0


def test_holding_admits_one_oversized_item_alone():
    holding = Holding(count=4, pixels=100)
    assert holding.take(500)  # alone: admitted
    taken = []
    t = threading.Thread(target=lambda: taken.append(holding.take(10)))
    t.start()
    t.join(0.2)
    assert t.is_alive() and not taken  # waits while the large one is held
    holding.give(500)
    t.join(5)
    assert taken == [True] and holding.peak == 1
