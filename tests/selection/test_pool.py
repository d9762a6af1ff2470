from __future__ import annotations

import numpy as np
import pytest

from selection import Pool, margin


def test_from_probs_fills_confidence_and_predicted_classes():
    probs = np.array([[0.7, 0.3], [0.2, 0.8]])
    pool = Pool.from_probs(probs, margin, embeddings=np.eye(2), labeled_classes=[1, 1, 0])
    np.testing.assert_allclose(pool.confidence, [0.4, 0.6])
    np.testing.assert_array_equal(pool.predicted, [0, 1])
    assert pool.size == 2 and pool.labeled == 3 and pool.n_classes() == 2
    # multi-label rows have no single predicted class
    assert Pool.from_probs(probs, multi_label=True).predicted is None


def test_sizes_must_agree_and_shapes_are_named():
    with pytest.raises(ValueError, match="disagree"):
        Pool(confidence=[0.1, 0.2], embeddings=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="embeddings must be a 2-D"):
        Pool(embeddings=[1.0, 2.0])
    with pytest.raises(ValueError, match="widths"):
        Pool(embeddings=np.zeros((2, 4)), labeled_embeddings=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="labeled"):
        Pool(labeled_embeddings=np.zeros((2, 3)), labeled_classes=[0])


def test_empty_and_counted_labels():
    assert Pool().size == 0 and Pool().labeled == 0 and Pool().n_classes() == 0
    assert Pool(n_labeled=7).labeled == 7
    assert Pool(predicted=[0, 4]).n_classes() == 5
