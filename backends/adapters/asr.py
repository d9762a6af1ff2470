"""Label Studio side of speech recognition: `<Audio>` with a `<TextArea>` for the whole transcript, or `<Labels>`
regions on the audio with a per-region `<TextArea perRegion="true">` (one region per Whisper segment).

The ML is the `asr` package's (`ASRModel`, `train_adaptation`); the transcript's shapes in Label Studio are
`backends/transcripts.py`'s; this module checks what a project may set and translates between the two."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from asr.adapt import FILE as ADAPTATION_FILE
from asr.adapt import Adaptation, AdaptationError, Sample, train_adaptation
from asr.audio import AudioError, AudioTooLong
from asr.engine import DecodeOptions, Transcriber, get_transcriber
from asr.models import LANGUAGES, WHISPER_NAMES, ModelError, is_whisper_name
from asr.served import ASRModel, training_decoder
from selection import STRATEGIES, UnknownStrategy
from selection import get as get_strategy

from ..base import Adapter, LabeledTask, TaskPrediction, TrainResult
from ..exceptions import BadRequest, LabelloopError, ModelUnavailable, NotEnoughData
from ..media import task_media
from ..params import Number, OneOf, allowed_weights_folder
from ..transcripts import TRUE, Layout, reference_text, transcript_layout, transcript_regions

log = logging.getLogger(__name__)

# The per-task score is the probability that the transcript is right (the product of Whisper's probabilities for
# the tokens it chose, times a speaking-rate factor, see asr.confidence): sequence-level least confidence. Margin and entropy need the
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


@dataclass(frozen=True)
class ModelName:
    """The `model` parameter: a Whisper name (`asr.models.WHISPER_NAMES`), or a CTranslate2 folder of WEIGHTS_DIR
    allowed by ALLOWED_WEIGHTS. Never a path: a label config's author is not the operator."""

    weights_dir: Path | None
    allowed: tuple[str, ...]
    name: str = "model"

    def parse(self, raw: Any) -> str:
        if isinstance(raw, str):
            name = raw.strip()
            if is_whisper_name(name) or allowed_weights_folder(name, self.weights_dir, self.allowed, "model.bin"):
                return name
        shown = raw[:80] if isinstance(raw, str) else type(raw).__name__
        raise BadRequest(f"'model' must be a Whisper model name ({', '.join(WHISPER_NAMES[:4])}, ...) or a folder of "
                         f"WEIGHTS_DIR that ALLOWED_WEIGHTS lists, got {shown!r}")

    def read(self, params: dict | None, default: str | None = None) -> str | None:
        raw = (params or {}).get(self.name)
        return default if raw is None or raw == "" else self.parse(raw)


class ASRAdapter(Adapter):
    """Transcribes audio tasks with Whisper; adapts to corrected transcripts with vocabulary and rules."""

    name = "asr"
    MEASURES = (SCORED_MEASURE,)  # Whisper reports the chosen token's probability only: no margin, no entropy

    def __init__(self, settings):
        super().__init__(settings)
        self.model_param = ModelName(settings.weights_dir, settings.allowed_weights)
        self.PARAMS = (*PARAMS, self.model_param)

    def check_config(self, label_config: str) -> None:
        transcript_layout(label_config)

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
                             vad=str(params.get("vad", True)).lower() in TRUE,
                             initial_prompt=prompt if isinstance(prompt, str) and prompt.strip() else None,
                             chunk_s=CHUNK_S.read(params),
                             max_seconds=self.settings.max_audio_seconds or None,
                             batch_size=self.settings.asr_batch_size, batch_above_s=self.settings.asr_batch_above_s)

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
        if name:  # a project asking for another base model (extra_params)
            wanted = self.transcriber(name)
            return (model or ASRModel(wanted)).on_base(wanted, name)
        return model or self.load_model(None)

    def predict(self, model: Any, tasks: list[dict], label_config: str, context: dict | None = None,
                params: dict | None = None, media: Any = None) -> list[TaskPrediction]:
        params = params or {}
        layout = transcript_layout(label_config)
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
            answers.append(TaskPrediction(result=transcript_regions(layout, transcript), score=transcript.confidence))
        return answers

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, examples: list[LabeledTask], label_config: str, parent: Any, out_dir: Path,
            params: dict | None = None, media: Any = None) -> TrainResult:
        params = params or {}
        layout = transcript_layout(label_config)
        parent = parent if isinstance(parent, ASRModel) else self.load_model(None)
        base = self._model_for(ASRModel(parent.transcriber), params)
        opts = self._options(layout, params)
        samples, skipped = [], 0
        for ex in examples:
            ref = reference_text(layout, ex.result)
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

        try:
            adaptation, metrics, publish, reason = train_adaptation(
                samples, training_decoder(base.transcriber, opts), parent.adaptation,
                min_count=MIN_RULE_COUNT.read(params, 2))
        except AdaptationError as e:
            raise NotEnoughData(str(e)) from None
        adaptation.base_model = self.model_param.read(params) or self.settings.asr_model or None
        metrics["skipped"] = skipped
        adaptation.metrics = metrics
        adaptation.save(out_dir)
        return TrainResult(n_examples=len(samples), metrics=metrics, publish=publish, reason=reason)
