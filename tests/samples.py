"""Small labeled examples only the tests use. (Data sets the benchmarks share are in `ops/sample_data.py`.)"""
from __future__ import annotations

from backends.base import LabeledTask

POSITIVE = ["great food", "lovely staff", "wonderful evening", "best pizza in town", "friendly and fast",
            "delicious dessert", "superb wine list"]
NEGATIVE = ["cold soup", "rude waiter", "terrible wait", "overpriced and bland", "dirty tables", "awful noise",
            "never again"]


def sentiment_examples(control: str = "sentiment", to_name: str = "text") -> list[LabeledTask]:
    """14 restaurant reviews labeled Positive/Negative, as the newest annotations of 14 tasks."""
    rows = [(t, "Positive") for t in POSITIVE] + [(t, "Negative") for t in NEGATIVE]
    return [LabeledTask(task_id=i + 1, data={"text": text}, annotation_id=i + 1,
                        result=[{"from_name": control, "to_name": to_name, "type": "choices",
                                 "value": {"choices": [label]}}])
            for i, (text, label) in enumerate(rows)]
