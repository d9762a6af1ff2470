"""The keypoints bench's measures: OKS and point error of a guess, and the mean-position baseline."""
from __future__ import annotations

import math

import numpy as np

from bench.keypoints_bench import mean_position, score
from bench.keypoints_shapes import LABELS, make_samples


def test_a_perfect_guess_scores_one_and_a_far_one_nearly_nothing(tmp_path):
    truth = make_samples(tmp_path, 1)[0].instances[0]
    exact = np.array([[p.x, p.y] for p in truth.points])
    oks, err = score(truth, exact)
    assert math.isclose(oks, 1.0, abs_tol=1e-6) and err == 0.0
    far_oks, far_err = score(truth, exact + 500)
    assert far_oks < 0.01 and far_err > 1
    assert score(truth, None)[0] == 0.0 and math.isnan(score(truth, None)[1])


def test_the_baseline_is_the_mean_position_in_image_fractions(tmp_path):
    samples = make_samples(tmp_path, 5)
    mean = mean_position(samples)
    assert mean.shape == (len(LABELS), 2) and ((mean > 0) & (mean < 1)).all()
    assert np.isclose(mean[0, 0], np.mean([s.instances[0].points[0].x / s.width for s in samples]))
