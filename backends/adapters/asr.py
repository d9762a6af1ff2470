"""Label Studio side of speech recognition: `<Audio>` with a `<TextArea>` for the whole transcript, or `<Labels>`
regions on the audio with a per-region `<TextArea perRegion="true">` (one region per Whisper segment)."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from asr.adapt import FILE as ADAPTATION_FILE
from asr.adapt import Adaptation, AdaptationError, Sample, train_adaptation
from asr.audio import DEFAULT_CHUNK_S, AudioError, AudioTooLong
from asr.engine import DecodeOptions, Transcriber, Transcript, get_transcriber
from asr.models import LANGUAGES, ModelError
from selection import STRATEGIES, UnknownStrategy
from selection import get as get_strategy

from ..base import Backend, LabeledTask, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData, UnsupportedConfig
from ..labels import Control, find_controls
from ..media import task_media
from ..params import Number, OneOf, allowed_weights_folder

log = logging.getLogger(__name__)

_TRUE = ("true", "1", "yes")
# The per-task score is the probability that the transcript is right (the product of Whisper's probabilities for
# the tokens it chose, see asr.confidence): sequence-level least confidence. Margin and entropy need the
# probabilities of the tokens it did not choose, which faster-whisper does not report, so strategies built on them
# are refused, never silently replaced.
SCORED_MEASURE = "least_confidence"


class StrategyParam:
    """The `uncertainty` param: a known selection strategy whose per-task measure asr can compute."""

    name = "uncertainty"

    @staticmethod
    def supported() -> list[str]:
        return sorted(n for n, s in STRATEGIES.items() if s.measure == SCORED_MEASURE and
                      not s.needs & {"probs", "predicted"})

    def parse(self, raw: Any) -> str:
        """`raw` as a strategy name asr can score by.

        Raises:
            BadRequest: an unknown strategy (the known ones listed), or one asr cannot score by.
        """
        try:
            strategy = get_strategy(raw if isinstance(raw, str) else repr(raw))
        except UnknownStrategy as e:
            raise BadRequest(f"'uncertainty': {e}") from None
        if strategy.name not in self.supported():
            raise BadRequest(
                f"'uncertainty': asr cannot rank by {strategy.name!r}: it needs {strategy.measure} over "
                "alternatives, and Whisper reports only the probability of each token it chose; choose one of: "
                f"{', '.join(self.supported())}")
        return strategy.name

    def read(self, params: dict | None, default: str | None = None) -> str | None:
        raw = (params or {}).get(self.name)
        if raw is None or raw == "":
            return default
        return self.parse(raw)


@lru_cache(maxsize=8)
def _default_strategy(name: str) -> str:
    """The process default if asr can score by it, else least_confidence (logged once per process and name)."""
    try:
        return UNCERTAINTY.parse(name)
    except BadRequest as e:
        log.warning("UNCERTAINTY_STRATEGY=%s: %s; asr scores by least_confidence", name, e)
        return SCORED_MEASURE


# what a request's params or a project's extra params may set (checked at /setup and at every /predict)
BEAM_SIZE = Number("beam_size", 1, 10, integer=True)
CHUNK_S = Number("chunk_s", 10, 600)  # memory grows with the chunk; below 10 s Whisper loses context
LANGUAGE = OneOf("language", LANGUAGES)
MIN_RULE_COUNT = Number("min_rule_count", 1, 1_000_000, integer=True)
UNCERTAINTY = StrategyParam()
PARAMS = (BEAM_SIZE, CHUNK_S, LANGUAGE, MIN_RULE_COUNT, UNCERTAINTY)
# Whisper models a project may name in its extra params (`model`), as faster-whisper knows them; a folder of
# WEIGHTS_DIR that ALLOWED_WEIGHTS lists is the other way. Never a path: a label config's author is not the operator.
WHISPER_NAMES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large-v1",
                 "large-v2", "large-v3", "large-v3-turbo", "turbo", "distil-small.en", "distil-medium.en",
                 "distil-large-v2", "distil-large-v3")


@dataclass(frozen=True)
class ModelName:
    """The `model` parameter: a Whisper name, or a CTranslate2 folder of WEIGHTS_DIR allowed by ALLOWED_WEIGHTS."""

    weights_dir: Path | None
    allowed: tuple[str, ...]
    name: str = "model"

    def parse(self, raw: Any) -> str:
        if isinstance(raw, str):
            name = raw.strip()
            short = name[len("faster-whisper-"):] if name.startswith("faster-whisper-") else name
            if short in WHISPER_NAMES:
                return name
            if allowed_weights_folder(name, self.weights_dir, self.allowed, "model.bin"):
                return name
        shown = raw[:80] if isinstance(raw, str) else type(raw).__name__
        raise BadRequest(f"'model' must be a Whisper model name ({', '.join(WHISPER_NAMES[:4])}, ...) or a folder of "
                         f"WEIGHTS_DIR that ALLOWED_WEIGHTS lists, got {shown!r}")

    def read(self, params: dict | None, default: str | None = None) -> str | None:
        raw = (params or {}).get(self.name)
        return default if raw is None or raw == "" else self.parse(raw)


@dataclass(frozen=True)
class Layout:
    """What a config asks for: the transcript box, and for segment-level configs the Labels and the label."""

    textarea: Control
    labels: Control | None = None
    label: str | None = None
    language: str | None = None

    @property
    def per_region(self) -> bool:
        return self.labels is not None


@lru_cache(maxsize=64)
def _layout(label_config: str) -> Layout:
    controls = find_controls(label_config, ("textarea", "labels"), ("audio", "audioplus"), backend="asr")
    areas = [c for c in controls if c.tag == "textarea"]
    if not areas:
        raise UnsupportedConfig("asr needs a <TextArea toName=...> on the <Audio> for the transcript")
    area = areas[0]
    language = (area.attrs.get("language") or area.object_attrs.get("language") or "").strip() or None
    if area.attrs.get("perRegion", "").lower() not in _TRUE:
        return Layout(area, language=language)
    labels = next((c for c in controls if c.tag == "labels" and c.to_name == area.to_name), None)
    if labels is None or not labels.labels:
        raise UnsupportedConfig(f'<TextArea name={area.name!r} perRegion="true"> needs a <Labels toName='
                                f'{area.to_name!r}> with at least one <Label> to make the regions')
    # the label for speech regions: a "Speech" label when there is one, else the first
    label = next((lb for lb in labels.labels if lb.lower() in ("speech", "transcript", "segment")), labels.labels[0])
    return Layout(area, labels, label, language)


class ASRModel:
    """A served version: the base transcriber and, once trained, the project's adaptation."""

    def __init__(self, transcriber: Transcriber, adaptation: Adaptation | None = None):
        self.transcriber = transcriber
        self.adaptation = adaptation

    def transcribe(self, path: str | Path, opts: DecodeOptions) -> Transcript:
        if self.adaptation is not None and self.adaptation.hotwords and not opts.hotwords:
            opts = DecodeOptions(**{**opts.__dict__, "hotwords": self.adaptation.hotwords})
        result = self.transcriber.transcribe(path, opts)
        if self.adaptation is not None:
            for s in result.segments:
                s.text = self.adaptation.apply(s.text)
        return result


class ASRBackend(Backend):
    """Transcribes audio tasks with Whisper; adapts to corrected transcripts with vocabulary and rules."""

    name = "asr"
    MEASURES = (SCORED_MEASURE,)  # Whisper reports the chosen token's probability only: no margin, no entropy

    def __init__(self, settings):
        super().__init__(settings)
        self.model_param = ModelName(settings.weights_dir, settings.allowed_weights)
        self.PARAMS = (*PARAMS, self.model_param)

    def check_config(self, label_config: str) -> None:
        _layout(label_config)

    def transcriber(self, model_name: str | None = None) -> Transcriber:
        """The base transcriber: `model_name`, else ASR_MODEL (settings), else tiny.en (each loaded once per
        process)."""
        name = model_name or self.settings.asr_model or None
        try:
            return get_transcriber(name, self.settings.weights_dir)
        except ModelError as e:
            raise ModelUnavailable(str(e)) from None

    # -- serving ------------------------------------------------------------------------------------------
    def load_model(self, version_dir: Path | None) -> ASRModel:
        if version_dir is None:
            return ASRModel(self.transcriber())
        if not (Path(version_dir) / ADAPTATION_FILE).is_file():
            raise LabelloopError(f"{version_dir} holds no ASR adaptation")
        adaptation = Adaptation.load(version_dir)
        return ASRModel(self.transcriber(adaptation.base_model), adaptation)

    def _options(self, layout: Layout, params: dict) -> DecodeOptions:
        prompt = params.get("initial_prompt")
        return DecodeOptions(language=LANGUAGE.read(params) or layout.language,
                             beam_size=BEAM_SIZE.read(params, 1),
                             vad=str(params.get("vad", True)).lower() in _TRUE,
                             initial_prompt=prompt if isinstance(prompt, str) and prompt.strip() else None,
                             chunk_s=CHUNK_S.read(params, DEFAULT_CHUNK_S),
                             max_seconds=self.settings.max_audio_seconds or None)

    def strategy(self, params: dict) -> str:
        """The selection strategy the scores serve: the project's or request's `uncertainty`, else the process
        default (UNCERTAINTY_STRATEGY).

        A project or request naming one asr cannot score by is a 400; a process default it cannot score by (one
        setting for every backend) leaves asr with its only measure, least confidence, and says so in the log.

        Raises:
            BadRequest: see `StrategyParam.parse`.
        """
        asked = UNCERTAINTY.read(params)
        return asked if asked is not None else _default_strategy(self.settings.uncertainty)

    def _model_for(self, model: ASRModel | None, params: dict) -> ASRModel:
        name = self.model_param.read(params)
        if name:  # a project asking for another base model (extra_params), not adapted
            wanted = self.transcriber(name)
            if model is None or model.transcriber.engine is not wanted.engine:
                return ASRModel(wanted, model.adaptation if model and model.adaptation and
                                model.adaptation.base_model == name else None)
        return model or self.load_model(None)

    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        layout = _layout(label_config)
        self.strategy(params)  # every strategy asr honours ranks by the same confidence; the rest are 400s
        model = self._model_for(model, params)
        opts = self._options(layout, params)
        answers = []
        for task in tasks:
            tid = task.get("id", "?") if isinstance(task, dict) else "?"
            try:
                transcript = model.transcribe(task_media(task, layout.textarea.value_key, media, "an audio"), opts)
            except AudioTooLong as e:
                answers.append(TaskPrediction(error=f"task {tid}: {e}; MAX_AUDIO_SECONDS sets it"))
                continue
            except (AudioError, LabelloopError) as e:
                answers.append(TaskPrediction(error=f"task {tid}: {e}"))
                continue
            except Exception as e:  # a decoder failure on one file must not cost the rest of the batch
                log.exception("task %s: transcription failed", tid)
                answers.append(TaskPrediction(error=f"task {tid}: transcription failed ({type(e).__name__}: {e})"))
                continue
            answers.append(TaskPrediction(result=self._result(layout, transcript), score=transcript.confidence))
        return answers

    def _result(self, layout: Layout, transcript: Transcript) -> list[dict]:
        area = layout.textarea
        if not layout.per_region:
            return [{"id": uuid.uuid4().hex[:10], "from_name": area.name, "to_name": area.to_name,
                     "type": "textarea", "value": {"text": [transcript.text]}, "score": transcript.confidence}]
        out = []
        for s in transcript.segments:
            rid = uuid.uuid4().hex[:10]  # the Labels region and its text share one id: that makes them one region
            span = {"start": s.start, "end": s.end, "channel": 0}
            out.append({"id": rid, "from_name": layout.labels.name, "to_name": area.to_name, "type": "labels",
                        "value": {**span, "labels": [layout.label]}, "score": s.confidence})
            out.append({"id": rid, "from_name": area.name, "to_name": area.to_name, "type": "textarea",
                        "value": {**span, "text": [s.text]}, "score": s.confidence})
        return out

    # -- training -----------------------------------------------------------------------------------------
    @staticmethod
    def reference(layout: Layout, result: list[dict]) -> str | None:
        """The corrected transcript in an annotation: the TextArea's text, regions joined in time order."""
        items = [r for r in result if r.get("from_name") == layout.textarea.name and r.get("type") == "textarea"]
        if not items:
            return None
        items.sort(key=lambda r: float((r.get("value") or {}).get("start") or 0.0))
        texts = [t for r in items for t in ((r.get("value") or {}).get("text") or []) if isinstance(t, str)]
        return " ".join(t.strip() for t in texts if t.strip())

    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        layout = _layout(label_config)
        parent = parent if isinstance(parent, ASRModel) else self.load_model(None)
        base = self._model_for(ASRModel(parent.transcriber), params)
        opts = self._options(layout, params)
        samples, skipped = [], 0
        for ex in examples:
            ref = self.reference(layout, ex.result)
            if ref is None:
                skipped += 1
                continue
            try:
                path = task_media({"id": ex.task_id, "data": ex.data}, layout.textarea.value_key, media, "an audio")
            except LabelloopError as e:
                log.warning("training example skipped: task %s: %s", ex.task_id, e)
                skipped += 1
                continue
            samples.append(Sample(str(ex.task_id), path, ref))

        def decode(path: str | Path, hotwords: str | None) -> str:
            try:
                return base.transcriber.transcribe(path, DecodeOptions(**{**opts.__dict__,
                                                                          "hotwords": hotwords})).text
            except AudioError as e:
                log.warning("training audio unreadable: %s", e)
                return ""

        try:
            adaptation, metrics, publish, reason = train_adaptation(
                samples, decode, parent.adaptation, min_count=MIN_RULE_COUNT.read(params, 2))
        except AdaptationError as e:
            raise NotEnoughData(str(e)) from None
        adaptation.base_model = self.model_param.read(params) or self.settings.asr_model or None
        metrics["skipped"] = skipped
        adaptation.metrics = metrics
        adaptation.save(out_dir)
        return TrainResult(n_examples=len(samples), metrics=metrics, publish=publish, reason=reason)
