"""`run_plans` over several models: labels per plan, class probabilities moved onto the plans' labels, and a
failing batch retried image by image (a fake detector: the real one is tested through the adapters)."""
from __future__ import annotations

import numpy as np

from detection.predict import Plan, plan_labels, run_plans
from detection.types import Detection


class FakeDetector:
    def __init__(self, found: dict[str, tuple[float, list[float] | None]], fail_batches: bool = False):
        self.found, self.fail_batches, self.calls = found, fail_batches, []

    def predict(self, images, conf=0.25, classes=None, **kw):
        self.calls.append((len(images), conf, classes))
        if self.fail_batches and len(images) > 1:
            raise RuntimeError("out of memory")
        if any(im is None for im in images):
            raise ValueError("bad image")
        dets = [Detection(c, s, (0, 0, 1, 1), class_probs=None if p is None else np.array(p))
                for c, (s, p) in self.found.items() if c in classes]
        return [list(dets) for _ in images]


def test_class_probabilities_line_up_over_the_labels_of_all_plans():
    # a trained model for Cat; the base model for Vehicle (two of its classes) and nothing else
    trained = FakeDetector({"cat": (0.8, [0.8])})
    base = FakeDetector({"bus": (0.6, [0.6, 0.3]), "truck": (0.2, [0.5, 0.2])})
    plans = [Plan(trained, {"cat": "Cat"}, 0.5), Plan(base, {"bus": "Vehicle", "truck": "Vehicle"}, 0.5)]
    assert plan_labels(plans) == ["Cat", "Vehicle"]
    [dets] = run_plans(plans, [np.zeros((4, 4, 3))], conf=0.01)
    assert [(lb, d.cls) for lb, d in dets] == [("Cat", "cat"), ("Vehicle", "bus"), ("Vehicle", "truck")]
    rows = np.stack([d.class_probs for _, d in dets])
    assert np.allclose(rows, [[0.8, 0], [0, 0.6], [0, 0.5]])  # a label of two classes: the higher of them
    assert trained.calls[0][1] == 0.01 and base.calls[0][2] == ["bus", "truck"]


def test_a_failing_batch_is_retried_image_by_image():
    det = FakeDetector({"cat": (0.8, None)}, fail_batches=True)
    out = run_plans([Plan(det, {"cat": "Cat"}, 0.5)], [np.zeros((4, 4, 3)), None])
    assert [d.class_probs for _, d in out[0]] == [None] and isinstance(out[1], ValueError)
