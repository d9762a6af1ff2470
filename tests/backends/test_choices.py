"""backends/choices.py: a Taxonomy's classes, the answers an annotation gives, and the one result writer of text and
image classification."""
from __future__ import annotations

import pytest

from backends.choices import ChoicesWriter, as_classes, check_classes, known_answer, task_score
from backends.exceptions import UnsupportedConfig
from backends.labels import find_controls

TAXONOMY = """<View><Image name="image" value="$image"/>
  <Taxonomy name="tax" toName="image"><Choice value="Vehicle"><Choice value="bus"/><Choice value="car"/></Choice>
  <Choice value="Other"/></Taxonomy></View>"""
CHOICES = """<View><Text name="t" value="$t"/>
  <Choices name="c" toName="t" choice="multiple"><Choice value="A"/><Choice value="B"/></Choices></View>"""


def test_a_taxonomy_is_predicted_as_its_leaf_paths():
    control = as_classes(find_controls(TAXONOMY, ("taxonomy",), ("image",))[0], TAXONOMY)
    assert control.labels == ["Vehicle / bus", "Vehicle / car", "Other"] and not control.multi
    assert control.synonyms("Vehicle / car") == ["car"]
    item = ChoicesWriter(control).item(["Vehicle / car"], 0.25, [("Vehicle / car", 0.7), ("Other", 0.2)])
    assert item == {"from_name": "tax", "to_name": "image", "type": "taxonomy", "score": 0.25,
                    "value": {"taxonomy": [["Vehicle", "car"]],
                              "top_k": [{"label": "Vehicle / car", "score": 0.7}, {"label": "Other", "score": 0.2}]}}
    answer = [{"from_name": "tax", "value": {"taxonomy": [["Vehicle", "bus"], ["Other"]]}}]
    assert known_answer(control, answer, control.labels, {}) == ["Vehicle / bus"]  # one path: single choice


def test_answers_with_classes_the_config_no_longer_has_are_counted_and_left_out():
    control = find_controls(CHOICES, ("choices",), ("text",))[0]
    unknown: dict[str, int] = {}
    first = {"from_name": "c", "value": {"choices": ["A"]}}
    later = {"from_name": "c", "value": {"choices": ["B", "Gone"]}}
    other = {"from_name": "x", "value": {"choices": ["A"]}}
    assert known_answer(control, [first, other], control.labels, unknown) == ["A"]
    assert known_answer(control, [first, later], control.labels, unknown) is None  # the last item counts
    assert known_answer(control, [{"from_name": "c", "value": {}}], control.labels, unknown) is None
    assert unknown == {"Gone": 1}
    item = ChoicesWriter(control).item(["A", "B"], 0.5)
    assert item["value"] == {"choices": ["A", "B"]} and item["type"] == "choices"


def test_a_control_without_classes_is_refused_and_the_least_confident_control_scores_the_task():
    bare = TAXONOMY.replace("<Choice", "<X").replace("</Choice", "</X")
    empty = as_classes(find_controls(bare, ("taxonomy",), ("image",))[0], bare)
    with pytest.raises(UnsupportedConfig, match="<Taxonomy name='tax'> has no <Choice>"):
        check_classes(empty)
    assert task_score([0.9, 0.3]) == pytest.approx(0.3) and task_score([]) is None
