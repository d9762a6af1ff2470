import pytest

from backends.exceptions import BadRequest
from backends.params import Flag, Number, OneOf, validate

IMGSZ = Number("imgsz", 32, 4096, integer=True)
THRESHOLD = Number("multi_threshold", 0, 1)
STRATEGY = OneOf("uncertainty", ("least_confidence", "margin", "entropy"))


def test_numbers_in_range_from_json_or_strings():
    assert IMGSZ.read({"imgsz": 640}) == 640 and IMGSZ.read({"imgsz": "640"}) == 640
    assert IMGSZ.read({"imgsz": 640.0}) == 640 and isinstance(IMGSZ.read({"imgsz": 640.0}), int)
    assert IMGSZ.read({}) is None and IMGSZ.read(None, default=8) == 8 and IMGSZ.read({"imgsz": ""}, 8) == 8
    assert THRESHOLD.read({"multi_threshold": "0.25"}) == 0.25 and THRESHOLD.read({"multi_threshold": 1}) == 1


@pytest.mark.parametrize("raw", [100000, 31, "abc", "1e3", 12.5, True, [], {}, "9" * 5000, float("nan")])
def test_bad_integers_name_the_field_and_the_range(raw):
    with pytest.raises(BadRequest, match=r"'imgsz' must be an integer from 32 to 4096"):
        IMGSZ.read({"imgsz": raw})


@pytest.mark.parametrize("raw", ["abc", "nan", "inf", -0.1, 1.5, [0.5]])
def test_bad_floats(raw):
    with pytest.raises(BadRequest, match=r"'multi_threshold' must be a number from 0 to 1"):
        THRESHOLD.read({"multi_threshold": raw})


def test_one_of_and_validate():
    assert STRATEGY.read({"uncertainty": "Margin"}) == "margin" and STRATEGY.read({}, "entropy") == "entropy"
    with pytest.raises(BadRequest, match="'uncertainty' must be one of least_confidence, margin, entropy; got 'nope'"):
        STRATEGY.read({"uncertainty": "nope"})
    validate({"imgsz": 64, "unrelated": "anything"}, [IMGSZ, THRESHOLD, STRATEGY])
    with pytest.raises(BadRequest, match=r"^extra_params: 'multi_threshold' must be a number from 0 to 1"):
        validate({"multi_threshold": "abc"}, [IMGSZ, THRESHOLD], where="extra_params")


def test_flags_from_json_booleans_or_their_strings():
    flag = Flag("centroids")
    assert flag.read({"centroids": False}) is False and flag.read({"centroids": " True "}) is True
    assert flag.read({}, default=True) is True
    for raw in ("no", 1, 0, "", None):
        if raw in ("", None):
            assert flag.read({"centroids": raw}) is None
            continue
        with pytest.raises(BadRequest, match="'centroids' must be true or false"):
            flag.read({"centroids": raw})


def test_a_flag_with_auto_also_takes_auto():
    flag = Flag("finetune", auto=True)
    assert flag.read({"finetune": " AUTO "}) == "auto" and flag.read({"finetune": "false"}) is False
    with pytest.raises(BadRequest, match="'finetune' must be true, false or \"auto\""):
        flag.read({"finetune": "sometimes"})
    with pytest.raises(BadRequest, match="'centroids' must be true or false"):
        Flag("centroids").read({"centroids": "auto"})
