"""A fine-tuned detection model on disk: one folder whose manifest (`detection.json`) names, per label-config control,
the weights file training wrote for it, the YOLO task and the classes.

The manifest is also what makes a weights file under the model folder loadable by path (`is_trained_weights`):
only files the backend wrote itself, never one that merely lies there.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .engines import Serving
from .model import Detector

MANIFEST = "detection.json"


class TrainedModelError(RuntimeError):
    """A model folder without a readable manifest, or one naming weights that are not its own."""


@dataclass
class TrainedControl:
    """The fine-tuned model of one control, the weights file it was loaded from, and the score threshold learned
    from the project's validation images (None: not enough of them)."""

    detector: Detector
    weights: Path
    threshold: float | None = None


@dataclass
class TrainedModel:
    """A served version: the fine-tuned model of each control that has one (by control name)."""

    controls: dict[str, TrainedControl] = field(default_factory=dict)


def write_manifest(folder: Path, controls: dict[str, dict]) -> None:
    """Write the manifest of a model folder.

    Args:
        controls: per control name, {"weights": a path relative to `folder`, "task", "classes", and optionally
            "threshold": the score threshold learned at training}.
    """
    (Path(folder) / MANIFEST).write_text(json.dumps({"controls": controls}, indent=1), encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, dict]:
    """The manifest's entries, each with "path": its weights resolved, checked to be a `.pt` file of the folder.

    Raises:
        TrainedModelError: no manifest, an unreadable one, or an entry pointing out of the folder.
    """
    folder = Path(folder).resolve()
    try:
        meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        entries = dict(meta["controls"])
    except FileNotFoundError:
        raise TrainedModelError(f"{folder} holds no detection model") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TrainedModelError(f"{folder / MANIFEST} is unreadable: {type(e).__name__}: {e}") from None
    out = {}
    for name, entry in entries.items():
        path = (folder / str(entry.get("weights", ""))).resolve()
        if folder not in path.parents or path.suffix != ".pt":
            raise TrainedModelError(f"{folder / MANIFEST}: control {name!r} names weights outside its folder "
                                    f"({entry.get('weights')!r})")
        out[name] = {**entry, "path": path}
    return out


def load_trained(folder: Path, serving: Serving = Serving()) -> TrainedModel:
    """Load every control's fine-tuned model of a folder written by training.

    Args:
        serving: `Detector.load`'s (a box model's OpenVINO export is cached by the weights' content, so one made
            when the version was trained is found here).

    Raises:
        TrainedModelError: a bad manifest (see `read_manifest`).
        detection.model.ModelLoadError: weights that do not load.
    """
    model = TrainedModel()
    for name, entry in read_manifest(folder).items():
        learned = entry.get("threshold")
        learned = float(learned) if isinstance(learned, (int, float)) and 0 <= learned <= 1 else None
        model.controls[name] = TrainedControl(Detector.load(entry["path"], entry["task"], serving),
                                              entry["path"], learned)
    return model


def is_trained_weights(path: Path, root: Path) -> bool:
    """Whether `path` (resolved) is a weights file that a manifest of a model folder below `root` lists.

    Args:
        path: the resolved path asked for.
        root: where trained models live (MODEL_DIR); its own folder is not a model folder.
    """
    root = Path(root).resolve()
    for folder in Path(path).parents:
        if folder == root or root not in folder.parents:
            return False
        if (folder / MANIFEST).is_file():
            try:
                return any(e["path"] == path for e in read_manifest(folder).values())
            except TrainedModelError:
                return False
    return False
