"""Labeled samples shared by the tests and the benchmarks."""
from __future__ import annotations

from backends.base import LabeledTask
from ops.demo_data import read_trec  # noqa: F401  (the TREC reader lives with the demo data; imported from here too)

# Short descriptions of the TREC-6 coarse classes, as a user would type them in a labeling config.
TREC_DESCRIPTIONS = {
    "ABBR": ["abbreviation", "acronym", "what does an abbreviation stand for"],
    "DESC": ["description", "definition", "what is the meaning of something", "why and how something happens"],
    "ENTY": ["entity", "thing", "animal", "food", "color", "product", "sport", "object"],
    "HUM": ["person", "who is someone", "group of people", "organization"],
    "LOC": ["location", "place", "city", "country", "where is something"],
    "NUM": ["number", "how many", "date", "when", "how much", "quantity", "year"],
}


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
