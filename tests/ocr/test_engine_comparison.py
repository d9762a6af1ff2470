"""The scoring of `bench.ocr_bench`'s engine comparison: a line one engine gives as several word regions is missed
by line recall but read right by the CER over all lines; missed text counts as deleted; a misread line makes the
image misread whatever the split."""
from __future__ import annotations

import numpy as np
import pytest

from bench.ocr_bench import score_condition
from ocr.engine import Line
from ocr.synthetic import TrueLine


def _box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


TRUTH = [TrueLine(_box(10, 10, 210, 40), "fresh bread today"), TrueLine(_box(10, 100, 110, 130), "open")]


def test_a_line_split_into_words_is_missed_by_recall_but_read_right():
    words = [Line(_box(150, 12, 208, 38), "today", 0.9), Line(_box(12, 12, 70, 38), "fresh", 0.95),
             Line(_box(80, 12, 140, 38), "bread", 0.8), Line(_box(10, 100, 110, 130), "open", 0.99)]
    out = score_condition([words], [TRUTH])
    assert out["line_recall"] == 0.5 and out["cer"] == 0.0
    assert out["cer_all_lines"] == 0.0  # the words, put in writing order along the true line, read it right
    assert out["images_with_a_flaw"] == 1 and out["images_misread"] == 0


def test_missed_and_misread_text_count_against_the_engine():
    one = [Line(_box(10, 10, 210, 40), "fresh bread today", 0.9)]  # "open" not found: 4 characters deleted
    assert score_condition([one], [TRUTH])["cer_all_lines"] == pytest.approx(4 / 21, abs=1e-4)  # rounded to 4 places
    wrong = [Line(_box(10, 10, 210, 40), "fresh bread toda", 0.4), Line(_box(10, 100, 110, 130), "open", 0.99)]
    right = [Line(_box(10, 10, 210, 40), "fresh bread today", 0.9), Line(_box(10, 100, 110, 130), "open", 0.99)]
    out = score_condition([wrong, right], [TRUTH, TRUTH])
    assert out["line_recall"] == 1.0 and out["images_misread"] == 1
    # the misread image has the lower task score (its least confident line): ranked first, AUROC 1
    assert out["task_score_auroc_for_misread_images"] == 1.0
