"""Label Studio side of OCR: `<Image>` with `<Rectangle>`/`<Polygon>` (or `<RectangleLabels>`/`<PolygonLabels>`),
`<Labels>` and a `<TextArea perRegion="true">`.

Translates only: task images in, one region per text line out (`backends.regions_ocr`), annotations back into
(recognized, corrected) line pairs. The ML (RapidOCR's lines, corrections learned from what annotators fixed, the
calibrated confidence and the publish guard by held-out character error rate) lives in `ocr/`.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from detection.images import ImageError, load_image
from ocr import EngineError, OcrModel, get_reader
from ocr.metrics import match_lines
from ocr.train import Pair, Sample, TrainingError, train

from ..base import Adapter, LabeledTask, TaskPrediction, TrainResult
from ..exceptions import LabelloopError, ModelUnavailable, NotEnoughData
from ..params import Number, OneOf
from ..regions_images import image_files, stream, task_id
from ..regions_ocr import OcrLayout, OcrRegions, ocr_layout

log = logging.getLogger(__name__)

THRESHOLD = Number("model_score_threshold", 0, 1)  # lines below it are not shown (they still lower the score)
SHAPE = OneOf("shape", ("rectangle", "polygon"))  # when the config has both kinds of geometry
BATCH = Number("batch_predict", 1, 64, integer=True)  # images decoded at a time
MIN_RULE_COUNT = Number("min_rule_count", 1, 1000, integer=True)
PARAMS = (THRESHOLD, SHAPE, BATCH, MIN_RULE_COUNT)
DEFAULT_THRESHOLD = 0.5  # RapidOCR's own text_score
EMPTY_SCORE = 1.0  # no line at all, not even below the threshold: confidently without text


@lru_cache(maxsize=64)
def _layout(label_config: str, shape: str | None = None) -> OcrLayout:
    return ocr_layout(label_config, shape)


def task_score(confidences: list[float]) -> float:
    """A task's confidence: its least confident line's (shown or not), EMPTY_SCORE for an image without any."""
    return float(min(confidences)) if confidences else EMPTY_SCORE


class OCRAdapter(Adapter):
    """Pre-annotates text lines with RapidOCR; learns corrections and a calibration from the submitted text."""

    name = "ocr"
    PARAMS = PARAMS
    MEASURES = ("least_confidence",)  # one recognition confidence per line: no margin, no entropy

    def check_config(self, label_config: str) -> None:
        _layout(label_config)

    def status(self) -> dict[str, Any]:
        return {"engine": "rapidocr (PP-OCR, onnxruntime)"}

    def reader(self):
        try:
            return get_reader()
        except EngineError as e:
            raise ModelUnavailable(str(e)) from None

    def load_model(self, version_dir: Path | None) -> OcrModel:
        self.reader()  # a broken install shows in /health now
        if version_dir is None:
            return OcrModel()
        try:
            return OcrModel.load(version_dir)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise LabelloopError(f"{version_dir} holds no OCR version: {e}") from None

    # -- serving ------------------------------------------------------------------------------------------
    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        layout = _layout(label_config, SHAPE.read(params))
        writer, threshold = OcrRegions(layout), THRESHOLD.read(params, DEFAULT_THRESHOLD)
        model = model if isinstance(model, OcrModel) else OcrModel()
        reader = self.reader()
        answers = [TaskPrediction() for _ in tasks]
        for idx, images, errors in stream(tasks, {layout.value_key}, media, self.settings,
                                          BATCH.read(params, 4)):
            for j, err in enumerate(errors):
                answer = answers[idx[j]]
                if err is not None:
                    answer.error = err
                    continue
                image = images[j][layout.value_key]
                try:
                    lines = model.read(reader, image.array)
                except Exception as e:  # one image the engine chokes on must not cost the rest of the batch
                    log.exception("task %s: OCR failed", task_id(tasks[idx[j]]))
                    answer.error = f"task {task_id(tasks[idx[j]])}: OCR failed ({type(e).__name__}: {e})"
                    continue
                shown = [ln for ln in lines if ln.confidence >= threshold]
                answer.result = writer.predict_regions(shown, image.width, image.height)
                answer.score = task_score([ln.confidence for ln in lines])
        return answers

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        """Pairs each annotated region with the base reader's line it covers (polygon IoU) and learns from the
        text the annotator submitted for it (see `ocr.train`)."""
        params = params or {}
        layout = _layout(label_config, SHAPE.read(params))
        samples, counts = self._samples(examples, layout, media)
        try:
            model, metrics, publish, reason = train(samples, parent if isinstance(parent, OcrModel) else None,
                                                    min_count=MIN_RULE_COUNT.read(params, 2))
        except TrainingError as e:
            raise NotEnoughData(str(e)) from None
        metrics.update(counts)
        model.metrics = metrics
        model.save(out_dir)
        return TrainResult(n_examples=len(samples), metrics=metrics, publish=publish, reason=reason)

    def _samples(self, examples: list[LabeledTask], layout: OcrLayout, media) -> tuple[list[Sample], dict]:
        """One `Sample` per annotated image that could be read, and counts of what was left out."""
        regions, reader = OcrRegions(layout), self.reader()
        tasks = [{"id": ex.task_id, "data": ex.data} for ex in examples]
        files, errors = image_files(tasks, {layout.value_key}, media)
        samples, counts = [], {"skipped": 0, "regions": 0, "regions_unmatched": 0}
        for ex, found, err in zip(examples, files, errors):
            try:
                if err is not None:
                    raise LabelloopError(err)
                array = load_image(found[layout.value_key], self.settings.max_image_pixels)
            except (ImageError, OSError, LabelloopError) as e:
                log.warning("training example skipped: %s", e)
                counts["skipped"] += 1
                continue
            height, width = array.shape[:2]
            truth = regions.read_regions(ex.result, width, height)
            if not truth:
                counts["skipped"] += 1
                continue
            try:
                lines = reader.read(array)  # the base reader's lines: corrections are learned against them
            except Exception as e:  # one image the engine chokes on must not cost the whole training
                log.warning("training example skipped: task %s: OCR failed (%s: %s)", ex.task_id,
                            type(e).__name__, e)
                counts["skipped"] += 1
                continue
            pairs = match_lines([ln.points for ln in lines], [t[0] for t in truth])
            counts["regions"] += len(truth)
            counts["regions_unmatched"] += len(truth) - len(pairs)
            samples.append(Sample(str(ex.task_id), [Pair(lines[i].text, lines[i].confidence, truth[k][1])
                                                    for i, k in pairs]))
        return samples, counts
