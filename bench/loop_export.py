"""A manager's own project through the simulated loop: a Label Studio JSON export (Export > JSON in the project, or
`sync.py export`) of labeled tasks, replayed to pick a strategy and a threshold.

    .venv/bin/python -m bench.loop_bench --export project.json --task text_cls [--text-key text] --out results/
    .venv/bin/python -m bench.loop_bench --export project.json --task detection --out results/

text_cls (single-choice `<Choices>` on `<Text>`): the submitted choices are the truth. A fifth of the tasks is held
out for accuracy; the rest is replayed through the real text model in rounds for each strategy (`bench/loop_bench.py`),
and the annotation seconds are compared with labeling the same number of tasks in random order without
pre-annotations. Reported: the saving per strategy, the held-out accuracy, and the confidence from which showing a
pre-annotation pays. When the export holds the predictions the annotators saw, their saving as served too.

detection (`<RectangleLabels>`): the submitted rectangles are the truth and the export's predictions (the backend's
scored boxes, exported with the tasks) the pre-annotations; no model runs. Reported: the saving at each threshold
(the best one to set as `model_score_threshold`) and per batch in the task score's order against random order.
Thresholds below the lowest score in the predictions cannot be judged: those boxes were never predicted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

HOLD_OUT = 0.2  # of the tasks, for the held-out accuracy of the text loop
MIN_TASKS = 20


class ExportError(ValueError):
    """The export cannot be replayed; the message says why and what to do."""


def read_export(path: Path) -> list[dict]:
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise ExportError(f"{path}: a Label Studio JSON export is a list of tasks (Export > JSON)")
    return tasks


def _annotation(task: dict) -> dict | None:
    """The task's last submitted annotation that was not cancelled."""
    found = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    return found[-1] if found else None


def _items(result: Any, kind: str) -> list[dict]:
    return [r for r in result or [] if isinstance(r, dict) and r.get("type") == kind
            and isinstance(r.get("value"), dict)]


# -- text -------------------------------------------------------------------------------------------------------
def text_examples(tasks: list[dict], text_key: str | None = None) -> tuple[list[str], list[str], list[str | None]]:
    """Texts, their submitted choice, and the choice the export's last prediction showed (None: none).

    Raises:
        ExportError: no single-choice annotations, a multi-choice answer, or no text field to read.
    """
    texts, labels, shown = [], [], []
    for task in tasks:
        ann = _annotation(task)
        items = _items(ann.get("result") if ann else None, "choices")
        chosen = [c for r in items for c in r["value"].get("choices") or []]
        if not chosen:
            continue
        if len(chosen) > 1:
            raise ExportError(f"task {task.get('id')}: {len(chosen)} choices; only single-choice projects are "
                              "replayed yet")
        data = task.get("data") or {}
        key = text_key or _guess_text_key(data, items[0].get("to_name"))
        if not isinstance(data.get(key), str):
            raise ExportError(f"task {task.get('id')}: data has no text field {key!r} (fields: {sorted(data)}); "
                              "pass --text-key")
        predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
        prediction = [c for r in _items(predictions[-1].get("result"), "choices")
                      for c in r["value"].get("choices") or []] if predictions else []
        texts.append(data[key])
        labels.append(chosen[0])
        shown.append(prediction[0] if prediction else None)
    if not texts:
        raise ExportError("the export holds no submitted single-choice annotations (<Choices> results)")
    return texts, labels, shown


def _guess_text_key(data: dict, to_name: str | None) -> str:
    """The data field of the text: the one named like the control's object, else the only text field."""
    if to_name in data and isinstance(data[to_name], str):
        return to_name
    strings = [k for k, v in data.items() if isinstance(v, str) and not k.startswith("$")]
    if len(strings) == 1:
        return strings[0]
    raise ExportError(f"cannot tell which data field holds the text (fields: {sorted(data)}); pass --text-key")


def run_text(args, tasks: list[dict]) -> dict:
    from bench.effort import choices, total
    from bench.loop_bench import (DEFAULT, SHARED, DiskCachedEncoder, TextData, best_label, best_of_study, draw,
                                  text_study)
    from text_cls import get_encoder

    texts, labels, shown = text_examples(tasks, args.text_key)
    if len(texts) < MIN_TASKS:
        raise ExportError(f"{len(texts)} labeled tasks; the replay needs at least {MIN_TASKS}")
    classes = sorted(set(labels))
    y = np.array([classes.index(lb) for lb in labels])
    test = np.zeros(len(texts), dtype=bool)
    test[np.random.default_rng(0).permutation(len(texts))[: max(1, int(HOLD_OUT * len(texts)))]] = True
    data = TextData("export", [t for t, h in zip(texts, test) if not h], y[~test],
                    [t for t, h in zip(texts, test) if h], y[test], classes)
    encoder = DiskCachedEncoder(get_encoder(None, os.environ.get("WEIGHTS_DIR") or SHARED / "models"))
    best = best_of_study()
    budget = min(args.budget, len(draw(data, 0).texts))
    study = text_study(data, list(range(args.seeds)), min(args.batch, budget), budget, encoder, DEFAULT, best,
                       best_label(best), tuple(args.strategy))
    words = [len(t.split()) for t in texts]
    served = [choices(None if s is None else [s], [lb], w, len(classes)) for s, lb, w in zip(shown, labels, words)]
    study["served_predictions"] = {"tasks_with_prediction": sum(s is not None for s in shown),
                                   "saving": round(total(served).saved, 4),
                                   "accuracy": round(float(np.mean([s == lb for s, lb in zip(shown, labels)
                                                                    if s is not None])), 4)
                                   if any(s is not None for s in shown) else None}
    return {"task": "text_cls", "tasks": len(texts), "held_out": int(test.sum()), "classes": classes,
            "export": study}


# -- boxes ------------------------------------------------------------------------------------------------------
def _xyxy(value: dict) -> tuple[float, float, float, float]:
    """Percent corners of a rectangle: IoU is the same in percent as in pixels (both axes scale alike for
    every box of an image). Rotation is ignored."""
    x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
    return (x, y, x + w, y + h)


def box_examples(tasks: list[dict]):
    """Per annotated task: (its predicted boxes as `Detection`s, its submitted boxes) and the prediction's score.

    Raises:
        ExportError: no annotated rectangles, or no scored predictions to judge.
    """
    from detection.types import Detection

    images, scores, lowest = [], [], 1.0
    for task in tasks:
        ann = _annotation(task)
        if ann is None:
            continue
        truths = [(r["value"]["rectanglelabels"][0], _xyxy(r["value"]))
                  for r in _items(ann.get("result"), "rectanglelabels") if r["value"].get("rectanglelabels")]
        predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
        if not predictions:
            continue
        regions = [r for r in _items(predictions[-1].get("result"), "rectanglelabels")
                   if r["value"].get("rectanglelabels") and isinstance(r.get("score"), (int, float))]
        dets = [Detection(r["value"]["rectanglelabels"][0], float(r["score"]), _xyxy(r["value"])) for r in regions]
        lowest = min([lowest] + [d.score for d in dets])
        images.append((sorted(dets, key=lambda d: -d.score), truths))
        score = predictions[-1].get("score")
        scores.append(float(score) if isinstance(score, (int, float)) else 1.0)
    if not images:
        raise ExportError("the export holds no annotated task with a prediction: let the backend pre-annotate "
                          "(sync.py predict), annotate, and export with predictions")
    if not any(d for d, _ in images):
        raise ExportError("the predictions hold no scored rectangles (a region's 'score'): nothing to judge")
    return images, scores, lowest


def run_boxes(args, tasks: list[dict]) -> dict:
    from bench.loop_boxes import box_loop, threshold_report
    from detection.threshold import THRESHOLDS

    images, scores, lowest = box_examples(tasks)
    judged = tuple(t for t in THRESHOLDS if t >= lowest - 1e-9) or (THRESHOLDS[-1],)
    report = threshold_report(images, judged)
    return {"task": "detection", "tasks": len(images), "lowest_predicted_score": round(lowest, 4),
            "threshold_choice": report,
            "orders": box_loop(images, scores, report["best"], min(args.batch, len(images)), args.seeds)}


def run_export(args) -> int:
    """Replay the export, print the table and write loop_export_<task>.json (and the PNG) into --out."""
    from bench import loop_bench, loop_boxes

    try:
        tasks = read_export(args.export)
        result = run_text(args, tasks) if args.task == "text_cls" else run_boxes(args, tasks)
    except ExportError as e:
        print(f"error: {e}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"loop_export_{args.task}.json").write_text(json.dumps(result, indent=1))
    if args.task == "text_cls":
        loop_bench.plot({"export": result["export"]}, args.out / "loop_export_text_cls.png", str(args.export))
        print(loop_bench.format_table({"export": result["export"]}))
        sp = result["export"]["served_predictions"]
        if sp["tasks_with_prediction"]:
            print(f"  the predictions in the export ({sp['tasks_with_prediction']} tasks, accuracy {sp['accuracy']})"
                  f" saved {sp['saving']:+.3f} of the time of choosing without them")
    else:
        loop_boxes.plot({"threshold": result["threshold_choice"]["best"], **result},
                        args.out / "loop_export_detection.png")
        print(loop_boxes.format_report(result))
    return 0
