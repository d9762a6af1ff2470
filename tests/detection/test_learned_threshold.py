"""The threshold a fine-tuned version learns from its validation images (`detection.guard.learned_threshold`)."""
from __future__ import annotations

from detection.guard import learned_threshold
from detection.threshold import MIN_OBJECTS
from detection.types import Detection


def _image(i: int, wrong: float, right: float) -> tuple[list[Detection], list]:
    """One object, found at score `right`, and a false box at score `wrong` elsewhere."""
    box = (10.0 + i, 10.0, 60.0 + i, 60.0)
    return ([Detection("cat", right, box), Detection("cat", wrong, (200.0, 200.0, 250.0, 250.0))],
            [("cat", box)])


def test_too_few_objects_keep_the_default():
    assert learned_threshold([_image(i, 0.3, 0.9) for i in range(MIN_OBJECTS - 1)]) is None
    assert learned_threshold([]) is None


def test_false_boxes_below_the_true_ones_raise_the_threshold():
    # every false box scores 0.3, every object 0.9: shown from 0.35 up, nothing is deleted and nothing drawn
    learned = learned_threshold([_image(i, 0.3, 0.9) for i in range(MIN_OBJECTS)])
    assert learned is not None and 0.3 < learned <= 0.9
