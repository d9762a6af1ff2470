"""Label Studio side of image classification: `<Image>` with `<Choices>` (single or multiple) or `<Taxonomy>`.

Before labels: a YOLO detector's classes found in the image, mapped onto the config's classes (`predicted_values`,
else the name; a Taxonomy path by its leaf), scored by their best box; nothing for the other classes. After
`min_examples` labels: `image_cls.ImageClassifier`, a head on pooled YOLO features over those base scores, published
only when held-out folds say it is not worse than the served version or the base predictions.

Every result item carries the k best classes (`top_k` extra param, default 5) in `value.top_k` as
[{"label", "score"}]: Label Studio keeps extra keys of a value (its prediction check reads only `choices`) and its
API returns them. The ML is the `image_cls` package's; this module translates configs, tasks and annotations.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from detection.images import ImageError, load_image
from detection.model import ModelLoadError
from detection.pool import DetectorPool
from detection.predict import run_plans
from detection.weights import WeightsError
from image_cls import Embedder, ImageClassifier, NotEnoughLabels, base_scores, choose, fit_classifier, top_k
from image_cls.classifier import encode_targets
from image_cls.features import DEFAULT_IMGSZ, FeatureError
from selection import combine, names
from selection import get_measure as get_strategy

from ..base import Backend, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import LabelloopError, ModelUnavailable, NotEnoughData, UnsupportedConfig
from ..labels import Control, find_controls
from ..params import Number, OneOf
from ..regions_images import image_files, stream, task_id
from ..regions_models import BATCH_PREDICT, IMGSZ, THRESHOLD, label_plan
from ..choices import PATH_SEP, answer as _answer, taxonomy_paths as _taxonomy_paths

log = logging.getLogger(__name__)

TOP_K = Number("top_k", 1, 100, integer=True)
MULTI_THRESHOLD = Number("multi_threshold", 0, 1)
UNCERTAINTY = OneOf("uncertainty", tuple(names()))
MIN_EXAMPLES = Number("min_examples", 2, 1_000_000, integer=True)
MIN_PER_CLASS = Number("min_per_class", 2, 1_000_000, integer=True)
GUARD_TOLERANCE = Number("guard_tolerance", 0, 1)
PARAMS = (TOP_K, MULTI_THRESHOLD, UNCERTAINTY, THRESHOLD, IMGSZ, BATCH_PREDICT, MIN_EXAMPLES, MIN_PER_CLASS,
          GUARD_TOLERANCE)
BASE_CONF = 0.1  # boxes below this confidence say nothing of the image (default model_score_threshold)
MANIFEST = "image_cls.json"


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    found = find_controls(label_config, ("choices", "taxonomy"), ("image",), backend="image_cls")
    return tuple(_as_classes(c, label_config) for c in found)


def _as_classes(control: Control, label_config: str) -> Control:
    """A Taxonomy as a control whose labels are its leaf paths ("A / B"), each standing for its leaf's name."""
    if control.tag != "taxonomy":
        return control
    paths = _taxonomy_paths(label_config, control.name)
    labels = [PATH_SEP.join(p) for p in paths]
    return replace(control, labels=labels, attrs={**control.attrs, "choice": "single"},
                   label_attrs={lb: {"predicted_values": p[-1]} for lb, p in zip(labels, paths)})


@dataclass
class ImageClsModel:
    """A served version: a trained classifier per control name (none: base predictions only)."""

    classifiers: dict[str, ImageClassifier] = field(default_factory=dict)


class ImageClassificationBackend(Backend):
    """Pre-annotates Choices/Taxonomy on images with their top-k classes: a detector's classes, then a trained head."""

    name = "image_cls"
    PARAMS = PARAMS

    def __init__(self, settings):
        super().__init__(settings)
        self.pool = DetectorPool(settings.weights_dir, settings.model_dir, settings.allowed_weights)
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    # -- models -------------------------------------------------------------------------------------------
    def check_config(self, label_config: str) -> None:
        for c in _controls(label_config):
            if not c.labels:
                raise UnsupportedConfig(f"<{'Taxonomy' if c.tag == 'taxonomy' else 'Choices'} name={c.name!r}> has "
                                        "no <Choice> entries")
            self._weights(c)

    def _weights(self, control: Control) -> str:
        try:
            return self.pool.resolve(control.attrs.get("model_path") or None, "detect")
        except WeightsError as e:
            raise UnsupportedConfig(str(e)) from None

    def _detector(self, control: Control):
        try:
            return self.pool.get(self._weights(control), "detect")
        except ModelLoadError as e:
            raise ModelUnavailable(str(e)) from None

    def _embedder(self, control: Control) -> Embedder:
        weights = self._weights(control)
        with self._lock:
            found = self._embedders.get(weights)
            if found is None:
                try:
                    found = self._embedders[weights] = Embedder.load(weights)
                except FeatureError as e:
                    raise ModelUnavailable(str(e)) from None
        return found

    def load_model(self, version_dir: Path | None) -> ImageClsModel:
        if version_dir is None:
            self.pool.get(self.pool.resolve(None, "detect"), "detect")  # missing weights show in /health now
            return ImageClsModel()
        try:
            manifest = json.loads((Path(version_dir) / MANIFEST).read_text())
            return ImageClsModel({name: ImageClassifier.load(Path(version_dir) / sub)
                                  for name, sub in manifest.items()})
        except (OSError, ValueError, KeyError) as e:
            raise LabelloopError(f"{version_dir} holds no image classifier: {e}") from None

    def classifier(self, model: Any, control: Control) -> ImageClassifier:
        """The trained classifier of a control when its classes are still the config's, else base predictions."""
        found = model.classifiers.get(control.name) if isinstance(model, ImageClsModel) else None
        if found is not None and found.classes == control.labels:
            return found
        return ImageClassifier(list(control.labels), control.multi)

    # -- the two model runs -------------------------------------------------------------------------------
    def scores(self, control: Control, arrays: list, params: dict) -> list:
        """Per image the base scores over the control's classes, or the Exception its prediction raised."""
        plan = label_plan(self._detector(control), control, THRESHOLD.read(params, default=BASE_CONF))
        if plan is None:  # the detector knows none of the classes: no base predictions at all
            return [np.zeros(len(control.labels)) for _ in arrays]
        index = {lb: j for j, lb in enumerate(control.labels)}
        found = run_plans([plan], arrays, IMGSZ.read(params), BATCH_PREDICT.read(params, default=8))
        return [d if isinstance(d, Exception) else base_scores([[(index[lb], det.score) for lb, det in d]],
                                                               len(index))[0] for d in found]

    def features(self, control: Control, arrays: list, params: dict) -> list:
        """Per image its feature vector, or the Exception that image raised (a failed batch is retried singly)."""
        return self._embedder(control).features_or_errors(arrays, BATCH_PREDICT.read(params, default=8),
                                                          IMGSZ.read(params))

    # -- serving ------------------------------------------------------------------------------------------
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        controls = _controls(label_config)
        k, threshold = TOP_K.read(params, default=5), MULTI_THRESHOLD.read(params, default=0.5)
        strategy = get_strategy(UNCERTAINTY.read(params) or self.settings.uncertainty)
        answers = [TaskPrediction() for _ in tasks]
        confidences: list[list[float]] = [[] for _ in tasks]
        keys = {c.value_key for c in controls}
        for idx, images, errors in stream(tasks, keys, media, self.settings, BATCH_PREDICT.read(params, default=8)):
            for control in controls:
                clf = self.classifier(model, control)
                ok = [j for j, e in enumerate(errors) if e is None]
                arrays = [images[j][control.value_key].array for j in ok]
                rows = self._rows(clf, control, arrays, params)
                for j, row in zip(ok, rows):
                    if isinstance(row, Exception):
                        errors[j] = f"task {task_id(tasks[idx[j]])}: prediction failed ({type(row).__name__}: {row})"
                        continue
                    item, conf = self._item(control, clf, *row, k, threshold, strategy)
                    answers[idx[j]].result += [item] if item else []
                    confidences[idx[j]].append(conf)
            for j, err in enumerate(errors):
                answers[idx[j]].error = err
        for answer, conf in zip(answers, confidences):
            if answer.error is None:
                answer.score = float(combine([np.array([c]) for c in conf])[0]) if conf else None
        return answers

    def _rows(self, clf: ImageClassifier, control: Control, arrays: list, params: dict) -> list:
        """Per image (probabilities, allowed classes), or its Exception."""
        if not arrays:
            return []
        if clf.imgsz:  # a head reads base scores and features as they were at its training size
            params = {**params, "imgsz": clf.imgsz}
        scores = self.scores(control, arrays, params)
        feats = self.features(control, arrays, params) if clf.head is not None else [None] * len(arrays)
        rows = []
        for s, f in zip(scores, feats):
            bad = s if isinstance(s, Exception) else f if isinstance(f, Exception) else None
            if bad is not None:
                rows.append(bad)
                continue
            f = None if f is None else f[None, :]
            rows.append((clf.proba(f, s[None, :])[0], clf.allowed(s[None, :])[0]))
        return rows

    @staticmethod
    def _item(control: Control, clf: ImageClassifier, proba: np.ndarray, allowed: np.ndarray, k: int,
              threshold: float, strategy) -> tuple[dict | None, float]:
        """The result item of one image (None when nothing may be predicted) and the image's confidence."""
        ranked = top_k(proba, control.labels, k, allowed)
        chosen = choose(ranked, control.multi, threshold)
        if not chosen:
            return None, float("nan")  # nothing known of this image: as uncertain as it gets
        p = np.where(allowed, proba, 0.0)
        if not control.multi:
            p = p / p.sum()
        conf = float(strategy(p[None, :], multi_label=control.multi)[0])
        if control.tag == "taxonomy":
            value: dict = {"taxonomy": [c.split(PATH_SEP) for c in chosen]}
        else:
            value = {"choices": chosen}
        value["top_k"] = [{"label": c, "score": s} for c, s in ranked]
        return {"from_name": control.name, "to_name": control.to_name, "type": control.tag, "value": value,
                "score": conf}, conf

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """The pooled YOLO features of the image the first control labels."""
        params = params or {}
        control = _controls(label_config)[0]
        out = [TaskEmbedding() for _ in tasks]
        for idx, images, errors in stream(tasks, {control.value_key}, media, self.settings,
                                          BATCH_PREDICT.read(params, default=8)):
            ok = [j for j, e in enumerate(errors) if e is None]
            vectors = self.features(control, [images[j][control.value_key].array for j in ok], params)
            for j, v in zip(ok, vectors):
                if isinstance(v, Exception):
                    errors[j] = f"task {task_id(tasks[idx[j]])}: features failed ({type(v).__name__}: {v})"
                else:
                    out[idx[j]].vector = [round(float(x), 6) for x in v]
            for j, err in enumerate(errors):
                out[idx[j]].error = err
        return out

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        manifest: dict[str, str] = {}
        metrics: dict[str, Any] = {}
        verdicts: list[str] = []
        used, why = 0, []
        for n, control in enumerate(_controls(label_config)):
            arrays, targets, ids, unknown = self._labeled(control, examples, media)
            if unknown:
                metrics.setdefault("skipped_unknown_labels", {}).update(unknown)
            if not arrays:
                continue
            report = self._fit_control(control, arrays, targets, ids, parent, params)
            if isinstance(report, str):
                why.append(report)
                continue
            report.classifier.imgsz = IMGSZ.read(params) or DEFAULT_IMGSZ
            report.classifier.save(Path(out_dir) / f"control-{n}")
            manifest[control.name] = f"control-{n}"
            metrics[control.name] = report.metrics
            used = max(used, len(ids))
            if not report.publish:
                verdicts.append(f"{control.name}: {report.reason}")
        if not manifest:
            raise NotEnoughData("; ".join(why) or "no annotated images for any Choices/Taxonomy of the config")
        (Path(out_dir) / MANIFEST).write_text(json.dumps(manifest))
        first = metrics[next(iter(manifest))]
        metrics.update({k: first[k] for k in ("accuracy", "base_accuracy") if k in first})
        return TrainResult(n_examples=used, metrics=metrics, publish=not verdicts, reason="; ".join(verdicts))

    def _fit_control(self, control: Control, arrays: list, targets: list[list[str]], ids: list[str], parent: Any,
                     params: dict):
        """The guard's report for one control, or a string saying why there are too few labels."""
        scores = self.scores(control, arrays, params)
        feats = self.features(control, arrays, params)
        good = [j for j in range(len(arrays)) if not isinstance(scores[j], Exception)
                and not isinstance(feats[j], Exception)]
        y = encode_targets(control.labels, [targets[j] for j in good], control.multi)
        served = self.classifier(parent, control)
        try:
            return fit_classifier(control.labels, control.multi, np.stack([feats[j] for j in good]) if good else
                                  np.zeros((0, 1)), np.stack([scores[j] for j in good]) if good else
                                  np.zeros((0, len(control.labels))), y, [ids[j] for j in good], served,
                                  MIN_EXAMPLES.read(params, default=10), MIN_PER_CLASS.read(params, default=2),
                                  GUARD_TOLERANCE.read(params, default=0.0))
        except NotEnoughLabels as e:
            return f"{control.name}: {e}"

    def _labeled(self, control: Control, examples: list[LabeledTask], media) -> tuple[list, list, list, dict]:
        """The decoded images, chosen classes and ids of the examples that label `control` with known classes,
        and the count of labels the config no longer has."""
        arrays, targets, ids, unknown = [], [], [], {}
        wanted = []
        for ex in examples:
            chosen = None
            for item in ex.result:
                answer = _answer(control, item)
                if answer is not None:
                    chosen = answer
            if not chosen:
                continue
            missing = [lb for lb in chosen if lb not in control.labels]
            for lb in missing:
                unknown[lb] = unknown.get(lb, 0) + 1
            if not missing:
                wanted.append((ex, chosen if control.multi else chosen[:1]))
        files, errors = image_files([{"id": ex.task_id, "data": ex.data} for ex, _ in wanted], {control.value_key},
                                    media)
        for (ex, chosen), found, err in zip(wanted, files, errors):
            try:
                if err is not None:
                    raise LabelloopError(err)
                arrays.append(load_image(found[control.value_key], self.settings.max_image_pixels))
            except (ImageError, OSError, LabelloopError) as e:
                log.warning("training example skipped: %s", e)
                continue
            targets.append(chosen)
            ids.append(str(ex.task_id))
        return arrays, targets, ids, unknown
