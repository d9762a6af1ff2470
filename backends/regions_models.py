"""The YOLO models behind region controls (detection's boxes and outlines, segmentation's automatic masks): the
parameters a project may set for them, a control's labels onto a model's classes, and the base model a control's
writer names, loaded from a `detection.pool.DetectorPool`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from detection.model import Detector, ModelLoadError
from detection.pool import DetectorPool
from detection.predict import IMGSZ_RANGE, Plan
from detection.types import Detection
from detection.weights import WeightsError
from selection import MEASURES, STRATEGIES, UnknownStrategy, get
from selection.uncertainty import Measure

from .exceptions import BadRequest, LabelloopError, UnsupportedConfig
from .labels import Control, LabelMap
from .params import Number
from .regions_writers import PixelRegion, RegionWriter, writer_for

log = logging.getLogger(__name__)

# the YOLO parameters a request's params or a project's extra params may set (checked at /setup and /predict)
IMGSZ = Number("imgsz", *IMGSZ_RANGE, integer=True)  # prediction and training; memory grows with its square
BATCH_PREDICT = Number("batch_predict", 1, 64, integer=True)
THRESHOLD = Number("model_score_threshold", 0.0, 1.0)


@dataclass(frozen=True)
class Flag:
    """A yes/no parameter (JSON true/false, 1/0, or "true"/"false"/"yes"/"no"); read like `params.Number`."""

    name: str

    def parse(self, raw: Any) -> bool:
        text = str(raw).strip().lower() if isinstance(raw, (str, bool, int)) else None
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise BadRequest(f"{self.name!r} must be true or false, got {str(raw)[:40]!r}")

    def read(self, params: dict | None, default: bool | None = None) -> bool | None:
        raw = (params or {}).get(self.name)
        return default if raw is None or raw == "" else self.parse(raw)  # Flag: to backends/params.py


# the measure a model without class probabilities (YOLO-seg) can score by: the candidates' own scores
CLASS_FREE_MEASURE = "least_confidence"


@dataclass(frozen=True)
class StrategyParam:
    """The `uncertainty` param: a selection strategy (`selection.STRATEGIES`) whose measure scores each task.

    Detection models give every candidate's class probabilities, so every measure can be honoured; segmentation
    models give only the top class's score, so strategies scored by margin or entropy are refused for controls
    predicted by one (`measure`), never silently replaced.
    """

    name: str = "uncertainty"

    def parse(self, raw: Any) -> str:
        """`raw` as a known strategy name.

        Raises:
            BadRequest: an unknown strategy, the known ones listed.
        """
        try:
            return get(raw if isinstance(raw, str) else repr(raw)).name
        except UnknownStrategy as e:
            raise BadRequest(f"{self.name!r}: {e}") from None

    def read(self, params: dict | None, default: str | None = None) -> str | None:
        raw = (params or {}).get(self.name)
        return default if raw is None or raw == "" else self.parse(raw)

    def measure(self, params: dict | None, default: str, writers: list[RegionWriter], backend: str) -> Measure:
        """The measure the tasks are scored by: that of the request's or project's strategy, else of `default`
        (the process's UNCERTAINTY_STRATEGY, one setting for every backend: where these models cannot honour it,
        the candidates' own scores are used and the log says so).

        Raises:
            BadRequest: an unknown strategy, or one that needs class probabilities a control's model lacks.
        """
        asked = self.read(params)
        strategy = get(asked or default)
        blind = [w for w in writers if w.model_task == "segment"]
        if strategy.measure == CLASS_FREE_MEASURE or not blind:
            return MEASURES[strategy.measure]
        if asked is None:
            if (default, backend) not in _WARNED:  # once a process, not on every request
                _WARNED.add((default, backend))
                log.info("UNCERTAINTY_STRATEGY=%s: %s scores %s by %s", default, backend, blind[0].control.name,
                         CLASS_FREE_MEASURE)
            return MEASURES[CLASS_FREE_MEASURE]
        can = sorted(n for n, s in STRATEGIES.items() if s.measure == CLASS_FREE_MEASURE)
        raise BadRequest(f"{self.name!r}: the {backend} backend cannot rank <{blind[0].tag} "
                         f"name={blind[0].control.name!r}> by {strategy.name!r}: it needs {strategy.measure} over "
                         "class probabilities, which segmentation models do not give; choose one of: "
                         f"{', '.join(can)}")


def measures_for(writers: list[RegionWriter]) -> list[str]:
    """The measures tasks predicted by `writers` can be scored by: masks come without class probabilities."""
    return [CLASS_FREE_MEASURE] if any(w.model_task == "segment" for w in writers) else list(MEASURES)


UNCERTAINTY = StrategyParam()
_WARNED: set[tuple[str, str]] = set()

_LABEL_MAPS: dict[tuple, LabelMap] = {}


def label_map(control: Control, names: list[str]) -> LabelMap:
    """`LabelMap` of a control onto a model's classes, built once, so that labels unknown to the model are
    logged once rather than on every request."""
    key = (control.name, control.tag, tuple(control.labels),
           tuple(sorted((k, tuple(sorted(v.items()))) for k, v in control.label_attrs.items())), tuple(names))
    found = _LABEL_MAPS.get(key)
    if found is None:
        if len(_LABEL_MAPS) > 512:
            _LABEL_MAPS.clear()
        found = _LABEL_MAPS[key] = LabelMap(control, names)
    return found


def label_plan(detector: Detector, control: Control, conf: float, skip: set[str] = frozenset()) -> Plan | None:
    """The run of `detector` for the control's labels it knows (except those in `skip`), or None."""
    lm = label_map(control, detector.names)
    labels = {c: lm.label(c) for c in lm.model_classes if lm.label(c) not in skip}
    return Plan(detector, labels, conf) if labels else None


def found_regions(dets: list[tuple[str, Detection]]) -> list[PixelRegion]:
    """(label, detection) pairs as the regions a writer writes."""
    return [PixelRegion(label, d.score, d.xyxy, d.polygon) for label, d in dets]


def check_controls(pool: DetectorPool, controls: tuple[Control, ...]) -> None:
    """Raise `UnsupportedConfig` for a control without labels, with bad model settings, or whose `model_path`
    names weights that may not be loaded."""
    for control in controls:
        if not control.labels:
            raise UnsupportedConfig(f"<{control.tag} name={control.name!r}> has no <Label> entries")
        writer = writer_for(control)
        try:
            pool.resolve(writer.model_path, writer.model_task)
        except WeightsError as e:
            raise UnsupportedConfig(str(e)) from None


def base_detector(pool: DetectorPool, writer: RegionWriter | None, task: str = "detect",
                  spec: str | None = None) -> Detector:
    """The base model of a control: its writer's `model_path` (tag, else the project's params), else `spec`, else
    the default weights of the writer's task (or of `task` without a writer).

    Raises:
        UnsupportedConfig: weights that may not be loaded, or a box model where outlines are needed.
        LabelloopError: weights that do not load.
    """
    task = writer.model_task if writer else task
    spec = (writer.model_path if writer else None) or spec or None
    try:
        detector = pool.get(pool.resolve(spec, task), task)
    except WeightsError as e:
        raise UnsupportedConfig(str(e)) from None
    except ModelLoadError as e:
        raise LabelloopError(str(e)) from None
    if task == "segment" and detector.task != "segment":
        where = f"<{writer.tag} name={writer.control.name!r}>" if writer else "outlines"
        raise UnsupportedConfig(f"{where} needs a segmentation model; {detector.source} is a {detector.task} model "
                                "(use e.g. yolov8n-seg.pt)")
    return detector


def control_plans(pool: DetectorPool, writer: RegionWriter, trained: Detector | None = None) -> list[Plan]:
    """The model runs that cover a control's labels: its fine-tuned model (`trained`) first, the base model for the
    labels the fine-tuned one was not trained on."""
    control, plans, covered = writer.control, [], set()
    if trained is not None and (plan := label_plan(trained, control, writer.threshold)):
        plans.append(plan)
        covered = set(plan.labels.values())
    if len(covered) < len(control.labels):
        plan = label_plan(base_detector(pool, writer), control, writer.threshold, covered)
        plans += [plan] if plan else []
    return plans
