"""RapidOCR through `ocr.engine` on rendered text: the lines are read (low CER), their outlines lie on the text,
rotated lines included; an image without text gives no line."""
from __future__ import annotations

import random
import time

import numpy as np
import pytest

from ocr.engine import Reader, get_reader
from ocr.metrics import cer, iou, match_lines
from ocr.synthetic import random_text, render


@pytest.fixture(scope="module")
def reader() -> Reader:
    return get_reader()


@pytest.mark.parametrize("max_angle", [0.0, 20.0])
def test_rendered_lines_are_read_where_they_are(reader, max_angle):
    refs, hyps, found_lines, true_lines = [], [], 0, 0
    for seed in range(3):
        rng = random.Random(seed)
        image, truth = render([random_text(rng) for _ in range(4)], seed, max_angle=max_angle)
        lines = reader.read(image)
        assert all(ln.points.shape == (4, 2) and 0 <= ln.confidence <= 1 for ln in lines)
        pairs = match_lines([ln.points for ln in lines], [t.points for t in truth], min_iou=0.5)
        true_lines += len(truth)
        found_lines += len(pairs)
        for i, j in pairs:
            refs.append(truth[j].text)
            hyps.append(lines[i].text)
    assert found_lines / true_lines >= 0.9, (found_lines, true_lines)
    assert cer(refs, hyps) < 0.03, list(zip(refs, hyps))


def test_a_rotated_line_keeps_its_angle(reader):
    image, truth = render(["Opening hours Monday"], seed=7, max_angle=25, sizes=(36, 36))
    (line,) = reader.read(image)
    assert line.text == "Opening hours Monday"
    assert iou(line.points, truth[0].points) > 0.6
    top_true, top_read = truth[0].points[1] - truth[0].points[0], line.points[1] - line.points[0]
    angle = np.degrees(np.arctan2(top_read[1], top_read[0]) - np.arctan2(top_true[1], top_true[0]))
    assert abs(angle) < 3, angle


def test_an_image_read_again_comes_from_the_cache(reader):
    image, _ = render(["Fresh bread today"], seed=11)
    first = reader.read(image)
    first[0].points += 100  # what a caller does with its lines does not reach the cache
    start = time.perf_counter()
    again = reader.read(image.copy())
    assert time.perf_counter() - start < 0.2
    assert [ln.text for ln in again] == ["Fresh bread today"] and not np.allclose(again[0].points, first[0].points)
    other = image.copy()
    other[0, 0] ^= 1  # one pixel: another image
    assert reader._cache_key(other) != reader._cache_key(image)


def test_an_image_without_text_has_no_line(reader):
    assert reader.read(np.full((200, 300, 3), 230, dtype=np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        reader.read(np.zeros((10, 10), dtype=np.uint8))
