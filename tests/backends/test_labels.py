import pytest

from backends.exceptions import TaskDataError, UnsupportedConfig
from backends.labels import LabelMap, check_size, find_controls, parse_config, task_value

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="Sports" predicted_values="sport,football"/>
    <Choice value="Politics"/>
    <Choice value="weather"/>
  </Choices>
  <Choices name="flags" toName="text" choice="multiple"><Choice value="Spam"/><Choice value="Toxic"/></Choices>
  <Image name="img" value="$image"/>
  <RectangleLabels name="box" toName="img"><Label value="Car"/></RectangleLabels>
</View>"""


def test_finds_choices_on_text_with_value_key_and_multi():
    controls = find_controls(CONFIG, ["choices"], ["text"])
    assert [c.name for c in controls] == ["topic", "flags"]
    topic, flags = controls
    assert topic.to_name == "text" and topic.value_key == "text" and topic.object_tag == "text"
    assert topic.labels == ["Sports", "Politics", "weather"]
    assert not topic.multi and flags.multi
    assert topic.synonyms("Sports") == ["sport", "football"] and topic.synonyms("Politics") == []


def test_other_object_types_are_separate():
    boxes = find_controls(CONFIG, ["rectanglelabels"], ["image"])
    assert [(c.name, c.value_key, c.labels) for c in boxes] == [("box", "image", ["Car"])]


def test_unsupported_config_says_what_is_needed():
    with pytest.raises(UnsupportedConfig, match=r"<Choices>.*<Text>"):
        find_controls('<View><Image name="i" value="$i"/><RectangleLabels name="b" toName="i">'
                      '<Label value="x"/></RectangleLabels></View>', ["choices"], ["text"])
    with pytest.raises(UnsupportedConfig, match="could not be parsed"):
        parse_config("<View><Text name='t' value='$t'>")
    with pytest.raises(UnsupportedConfig, match="empty"):
        parse_config("  ")


def test_label_map_predicted_values_exact_and_case_insensitive():
    topic = find_controls(CONFIG, ["choices"], ["text"])[0]
    mapping = LabelMap(topic, ["football", "Politics", "Weather", "finance"])
    assert mapping.label("football") == "Sports"
    assert mapping.label("Politics") == "Politics"
    assert mapping.label("Weather") == "weather"
    assert mapping.label("finance") is None  # not in the config: never predicted
    assert sorted(mapping.model_classes) == ["Politics", "Weather", "football"]
    assert LabelMap(topic, ["Politics"]).unmapped_labels == ["Sports", "weather"]


def test_task_value_missing_field_names_task_and_key():
    assert task_value({"id": 1, "data": {"text": "hi"}}, "text") == "hi"
    with pytest.raises(TaskDataError, match=r"task 7 has no field 'text'.*\$text.*other"):
        task_value({"id": 7, "data": {"other": 1}}, "text")
    with pytest.raises(TaskDataError):
        task_value({"id": 8}, "text")


def _choices(n: int) -> str:
    return ('<View><Text name="text" value="$text"/><Choices name="c" toName="text">'
            + "".join(f'<Choice value="label {i}"/>' for i in range(n)) + "</Choices></View>")


def test_a_config_is_parsed_once():
    import time

    config = _choices(2000)
    started = time.perf_counter()
    first = parse_config(config)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    assert parse_config(config) is first
    assert time.perf_counter() - started < max(0.01, first_s / 20)
    with pytest.raises(UnsupportedConfig, match="could not be parsed"):  # a failure is remembered too
        parse_config("<View><Text name='t' value='$t'>")
    with pytest.raises(UnsupportedConfig, match="must be a string"):
        parse_config({"not": "xml"})


def test_check_size_bounds_the_labels():
    check_size(_choices(1000), 1000)
    check_size("", 10)  # empty: for check_config to refuse
    with pytest.raises(UnsupportedConfig, match=r"1001 labels; at most 1000 .*MAX_LABELS"):
        check_size(_choices(1001), 1000)
    with pytest.raises(UnsupportedConfig, match=r"\d+ tags; at most 1000 labels"):
        check_size(_choices(200_000), 1000)  # refused before parsing: this would take seconds
