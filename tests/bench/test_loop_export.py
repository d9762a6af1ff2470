"""A manager's export through the simulated loop (`python -m bench.loop_bench --export`): a small Label Studio JSON
export built here, replayed for text (the real MiniLM text model) and boxes (the export's own predictions)."""
import json

import pytest

from bench.effort import CHOICE_COSTS as C
from bench.loop_bench import main
from bench.loop_export import ExportError, box_examples, text_examples
from selection import DEFAULT
from ops.sample_data import read_trec


def _choice(label: str, to_name: str = "question") -> list[dict]:
    return [{"from_name": "topic", "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]


def _rect(label: str, x: float, y: float, w: float = 10, h: float = 10, score: float | None = None) -> dict:
    item = {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 640,
            "original_height": 480, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                                              "rectanglelabels": [label]}}
    if score is not None:
        item["score"] = score
    return item


def text_export(datasets_dir, per_class: int = 15) -> list[dict]:
    """TREC test questions of three classes, annotated; every other one with the right prediction shown."""
    texts, labels = read_trec(datasets_dir / "text" / "trec" / "TREC_10.label")
    tasks, seen = [], {"HUM": 0, "LOC": 0, "NUM": 0}
    for text, label in zip(texts, labels):
        if label in seen and seen[label] < per_class:
            seen[label] += 1
            task = {"id": len(tasks) + 1, "data": {"question": text, "source": "trec"},
                    "annotations": [{"id": 1, "result": _choice(label), "was_cancelled": False}]}
            if len(tasks) % 2 == 0:
                task["predictions"] = [{"result": _choice(label), "score": 0.9}]
            tasks.append(task)
    tasks.append({"id": 999, "data": {"question": "skipped"},
                  "annotations": [{"id": 2, "result": _choice("HUM"), "was_cancelled": True}]})
    return tasks


@pytest.mark.slow
def test_text_export_replayed_per_strategy(tmp_path, datasets_dir, weights_dir, monkeypatch, capsys):
    monkeypatch.setenv("WEIGHTS_DIR", str(weights_dir))
    path = tmp_path / "project.json"
    path.write_text(json.dumps(text_export(datasets_dir)))
    rc = main(["--export", str(path), "--task", "text_cls", "--seeds", "1", "--batch", "10", "--budget", "20",
               "--out", str(tmp_path / "out")])
    assert rc == 0
    result = json.loads((tmp_path / "out" / "loop_export_text_cls.json").read_text())
    assert (tmp_path / "out" / "loop_export_text_cls.png").stat().st_size > 0
    assert result["tasks"] == 45 and result["held_out"] == 9  # the cancelled one left out
    assert result["classes"] == ["HUM", "LOC", "NUM"]
    arms = result["export"]["arms"]
    assert {"random_scratch", "random"} <= set(arms)
    assert any(a.startswith(f"{DEFAULT} (default") for a in arms)
    for arm in arms.values():
        assert arm["labels"] == [10, 20]
        assert 0.0 <= arm["accuracy"]["mean"][-1] <= 1.0
    assert arms["random_scratch"]["saving_vs_baseline"]["mean"] == [0.0, 0.0]
    # each confirmed pre-annotation saves finding and clicking the choice, each corrected one costs a judgement
    r = arms["random"]
    right = sum(10 * a for a in r["batch_preannotation_accuracy"]["mean"])
    expected = r["scratch_same_tasks_s"]["mean"][-1] - right * (C.search(3) + C.click()) + (20 - right) * C.decide
    assert r["cumulative_s"]["mean"][-1] == pytest.approx(expected, abs=0.2)
    assert arms["random_scratch"]["cumulative_s"] == r["scratch_same_tasks_s"]  # same tasks, no pre-annotations
    served = result["export"]["served_predictions"]
    assert served["tasks_with_prediction"] == 23 and served["accuracy"] == 1.0 and served["saving"] > 0
    out = capsys.readouterr().out
    assert f"{DEFAULT} (default" in out and "show pre-annotations from confidence" in out


def test_text_export_errors_name_the_problem(tmp_path, capsys):
    multi = [{"id": 1, "data": {"text": "a"}, "annotations": [{"result": [
        {"from_name": "t", "to_name": "text", "type": "choices", "value": {"choices": ["a", "b"]}}]}]}]
    with pytest.raises(ExportError, match="single-choice"):
        text_examples(multi)
    two_fields = [{"id": 1, "data": {"a": "x", "b": "y"}, "annotations": [{"result": _choice("A", "text")}]}]
    with pytest.raises(ExportError, match="--text-key"):
        text_examples(two_fields)
    assert text_examples(two_fields, "b")[0] == ["y"]
    with pytest.raises(ExportError, match="no submitted single-choice"):
        text_examples([{"id": 1, "data": {"text": "a"}, "annotations": []}])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"not": "a list"}))
    assert main(["--export", str(path), "--task", "text_cls", "--out", str(tmp_path)]) == 2
    assert "list of tasks" in capsys.readouterr().out


def box_export() -> list[dict]:
    """Ten images: a right box at 0.9 and a false one at 0.2 on each; on half, a second object found at 0.3."""
    tasks = []
    for i in range(10):
        truth = [_rect("car", 10, 10)] + ([_rect("person", 50, 50)] if i % 2 else [])
        shown = [_rect("car", 10.5, 10, score=0.9), _rect("car", 80, 80, score=0.2)]
        if i % 2:
            shown.append(_rect("person", 50, 51, score=0.3))
        tasks.append({"id": i, "data": {"image": f"/data/upload/{i}.jpg"},
                      "annotations": [{"result": truth, "was_cancelled": False}],
                      "predictions": [{"result": shown, "score": 0.5 if i % 2 else 0.8}]})
    return tasks


def test_box_export_picks_the_threshold_and_compares_orders(tmp_path, capsys):
    path = tmp_path / "project.json"
    path.write_text(json.dumps(box_export()))
    assert main(["--export", str(path), "--task", "detection", "--seeds", "2", "--batch", "5",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "loop_export_detection.json").read_text())
    choice = result["threshold_choice"]
    assert result["lowest_predicted_score"] == 0.2
    assert choice["thresholds"][0] == 0.2  # nothing below the lowest predicted score is judged
    assert choice["best"] == 0.25  # hides the false 0.2 boxes, keeps the 0.3 ones
    assert choice["objects"] == 15
    # at 0.25 every object is verified (1.6 s) instead of drawn (7 s)
    assert choice["saving_at_best"] == pytest.approx(1 - 1.6 / 7.0, abs=1e-4)
    orders = result["orders"]
    assert orders["task score (least confident first)"]["images"] == [5, 10]
    assert "best threshold 0.25" in capsys.readouterr().out


def test_box_export_without_predictions_says_what_to_do(tmp_path, capsys):
    tasks = box_export()
    for t in tasks:
        del t["predictions"]
    with pytest.raises(ExportError, match="sync.py predict"):
        box_examples(tasks)
    path = tmp_path / "project.json"
    path.write_text(json.dumps(tasks))
    assert main(["--export", str(path), "--task", "detection", "--out", str(tmp_path)]) == 2
    assert "export with predictions" in capsys.readouterr().out
