"""Label Studio side of named entities: `<Labels>` on `<Text>`.

Translates only: task texts and annotation spans in, `ner` package calls, result items out. The ML (spaCy's
entities mapped onto the project's labels, the learned tagger, its publish guard) lives in `ner/`.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from ner import pipeline
from ner.features import encoder as load_encoder
from ner.features import text_vectors, token_features
from ner.mapping import label_types
from ner.model import NerModel, Prediction
from ner.tagger import DEFAULT_C
from ner.train import Sample, TrainingError, train_tagger
from selection import combine, get_measure, names

from ..base import Adapter, LabeledTask, TaskEmbedding, TaskPrediction, TrainResult
from ..exceptions import LabelloopError, ModelUnavailable, NotEnoughData
from ..labels import Control, find_controls, task_text
from ..params import Number, OneOf
from ..regions_spans import SpanLabels, span_writer_for

log = logging.getLogger(__name__)

UNCERTAINTY = OneOf("uncertainty", tuple(names()))
C = Number("ner_c", 1e-4, 1e4)  # the tagger's inverse regularisation strength
PARAMS = (UNCERTAINTY, C)


@lru_cache(maxsize=64)
def _controls(label_config: str) -> tuple[Control, ...]:
    return tuple(find_controls(label_config, ("labels",), ("text",), backend="ner"))


def _mapping(control: Control) -> dict[str, str]:
    """spaCy type -> the control's label (names, aliases, `predicted_values`)."""
    return label_types(control.labels, {lb: control.synonyms(lb) for lb in control.labels},
                       pipeline.entity_types())


class NERAdapter(Adapter):
    """Pre-annotates entity spans: spaCy's entities mapped by name, then a tagger learned from submitted spans."""

    name = "ner"
    PARAMS = PARAMS  # checked at /setup and /predict (backends/params.py)

    def check_config(self, label_config: str) -> None:
        for control in _controls(label_config):
            span_writer_for(control)

    def status(self) -> dict[str, Any]:
        return {"spacy_model": pipeline.PACKAGE_MODULE}

    def _encoder(self):
        try:
            return load_encoder(self.settings.weights_dir)
        except (OSError, ValueError) as e:
            raise ModelUnavailable(f"the MiniLM encoder could not be loaded: {e}") from None

    def load_model(self, version_dir: Path | None) -> NerModel:
        try:
            pipeline.load()
        except pipeline.PipelineUnavailable as e:
            raise ModelUnavailable(str(e)) from None
        if version_dir is None:
            return NerModel()
        model = NerModel.load(version_dir)
        if not model.learned:
            raise LabelloopError(f"{version_dir} holds no learned ner model")
        self._encoder()
        return model

    def _texts(self, tasks: list[dict], control: Control, media, errors: list[str | None]) -> tuple[list, list]:
        """(texts, rows) of the tasks without an error yet; a task whose text cannot be read gets its error."""
        texts, rows = [], []
        for i, task in enumerate(tasks):
            if errors[i] is not None:
                continue
            try:
                value = task_text(task, control, media)
                if len(value) > pipeline.load().max_length:
                    raise LabelloopError(f"task {task.get('id', '?')}: a text of {len(value)} characters is longer "
                                         f"than the {pipeline.load().max_length} spaCy reads")
                texts.append(value)
                rows.append(i)
            except LabelloopError as e:
                errors[i] = str(e)
        return texts, rows

    def _predict_texts(self, model: NerModel, texts: list[str], control: Control, params: dict) -> list[Prediction]:
        measure = get_measure(UNCERTAINTY.read(params) or self.settings.uncertainty)
        analyses = pipeline.analyse(texts)
        features = token_features(self._encoder(), texts, analyses) if model.learned else None
        return model.predict(analyses, features, _mapping(control), control.labels, measure)

    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        model = model if isinstance(model, NerModel) else NerModel()
        errors: list[str | None] = [None] * len(tasks)
        answers = [TaskPrediction() for _ in tasks]
        scores: list[list[float]] = [[] for _ in tasks]
        for control in _controls(label_config):
            writer = span_writer_for(control, params)
            texts, rows = self._texts(tasks, control, media, errors)
            if not texts:
                continue
            for row, text, found in zip(rows, texts, self._predict_texts(model, texts, control, params)):
                answers[row].result += writer.predict_regions(text, found.spans)
                if found.score is not None:
                    scores[row].append(found.score)
        for answer, error, score in zip(answers, errors, scores):
            answer.error = error
            if error is None:
                answer.score = float(combine([[s] for s in score])[0]) if score else None
        return answers

    def embed(self, model: Any, tasks: list[dict], label_config: str, params: dict | None = None,
              media: Any = None) -> list[TaskEmbedding]:
        """MiniLM's sentence embedding of the text the first control labels."""
        errors: list[str | None] = [None] * len(tasks)
        texts, rows = self._texts(tasks, _controls(label_config)[0], media, errors)
        out = [TaskEmbedding(error=e) for e in errors]
        for row, vector in zip(rows, text_vectors(self._encoder(), texts) if texts else []):
            out[row].vector = [round(float(x), 6) for x in vector]
        return out

    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        """Learn a tagger for the first `<Labels>` control from the submitted spans (see `ner.train`)."""
        params = params or {}
        control = _controls(label_config)[0]
        writer: SpanLabels = span_writer_for(control, params)
        errors: list[str | None] = [None] * len(examples)
        tasks = [{"id": ex.task_id, "data": ex.data} for ex in examples]
        texts, rows = self._texts(tasks, control, media, errors)
        for ex, error in zip(examples, errors):
            if error is not None:
                log.warning("training example skipped: %s", error)
        samples = [Sample(text, writer.read_spans(text, examples[row].result), str(examples[row].task_id))
                   for row, text in zip(rows, texts)]
        measure = get_measure(UNCERTAINTY.read(params) or self.settings.uncertainty)
        try:
            model, metrics, publish, reason = train_tagger(
                samples, control.labels, _mapping(control), parent if isinstance(parent, NerModel) else None,
                self._encoder(), measure, c=C.read(params, DEFAULT_C))
        except TrainingError as e:
            raise NotEnoughData(str(e)) from None
        metrics["skipped"] = len(examples) - len(samples)
        model.save(out_dir)
        return TrainResult(n_examples=len(samples), metrics=metrics, publish=publish, reason=reason)
