"""A served asr version: the base transcriber and, once trained, the project's adaptation (its vocabulary as the
decoder's hotwords, its rules on the output); and the decoder adaptation training calls."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .adapt import Adaptation, Decode
from .audio import AudioError
from .engine import DecodeOptions, Transcriber, Transcript

log = logging.getLogger(__name__)


class ASRModel:
    """A served version: the base transcriber and, once trained, the project's adaptation."""

    def __init__(self, transcriber: Transcriber, adaptation: Adaptation | None = None):
        self.transcriber = transcriber
        self.adaptation = adaptation

    def transcribe(self, path: str | Path, opts: DecodeOptions) -> Transcript:
        """The transcript of an audio file: the adaptation's hotwords unless `opts` has its own, its rules applied
        to every segment."""
        if self.adaptation is not None and self.adaptation.hotwords and not opts.hotwords:
            opts = replace(opts, hotwords=self.adaptation.hotwords)
        result = self.transcriber.transcribe(path, opts)
        if self.adaptation is not None:
            for s in result.segments:
                s.text = self.adaptation.apply(s.text)
        return result

    def on_base(self, transcriber: Transcriber, name: str) -> ASRModel:
        """This version on the base model called `name` (loaded as `transcriber`): itself when it runs on that
        model already; else its adaptation goes along only when it was learned on `name`."""
        if self.transcriber.engine is transcriber.engine:
            return self
        keep = self.adaptation if self.adaptation is not None and self.adaptation.base_model == name else None
        return ASRModel(transcriber, keep)


def training_decoder(transcriber: Transcriber, opts: DecodeOptions) -> Decode:
    """The `Decode` that `asr.adapt.train_adaptation` calls: the base transcript's text with the given hotwords;
    an unreadable file decodes to "" (logged), so that it counts as all wrong rather than failing the fit."""

    def decode(path: str | Path, hotwords: str | None) -> str:
        try:
            return transcriber.transcribe(path, replace(opts, hotwords=hotwords)).text
        except AudioError as e:
            log.warning("training audio unreadable: %s", e)
            return ""

    return decode
