"""A served version without Label Studio: the adaptation's hotwords and rules around the base transcriber, which
adaptation goes along to another base model, and the decoder adaptation training calls."""
from __future__ import annotations

from asr.adapt import Adaptation, Rule
from asr.audio import AudioError
from asr.engine import DecodeOptions, Segment, Transcript
from asr.models import is_whisper_name
from asr.served import ASRModel, training_decoder


class _Transcriber:
    """Records the options of each call; answers `text` as one segment, or raises for a file called "broken"."""

    def __init__(self, text: str = "we run cube flow on it"):
        self.engine, self.text, self.calls = object(), text, []

    def transcribe(self, path, opts=None) -> Transcript:
        self.calls.append(opts)
        if str(path) == "broken":
            raise AudioError("broken: not an audio file")
        return Transcript([Segment(0.0, 1.0, self.text, -0.1, 0.0, 0.9)])


ADAPTED = Adaptation(vocabulary=["Kubeflow"], rules=[Rule("cube flow", "Kubeflow", 3)], base_model="base.en")


def test_the_adaptation_steers_the_decoder_and_corrects_its_output():
    base = _Transcriber()
    assert ASRModel(base, ADAPTED).transcribe("a.wav", DecodeOptions()).text == "we run Kubeflow on it"
    assert base.calls[-1].hotwords == "Kubeflow"
    ASRModel(base, ADAPTED).transcribe("a.wav", DecodeOptions(hotwords="Airflow"))
    assert base.calls[-1].hotwords == "Airflow"  # a request's own hotwords win
    assert ASRModel(base).transcribe("a.wav", DecodeOptions()).text == "we run cube flow on it"


def test_another_base_model_keeps_only_an_adaptation_learned_on_it():
    served = ASRModel(_Transcriber(), ADAPTED)
    assert served.on_base(served.transcriber, "tiny.en") is served  # already runs on it
    other = _Transcriber()
    assert served.on_base(other, "base.en").adaptation is ADAPTED
    moved = served.on_base(other, "small")
    assert moved.transcriber is other and moved.adaptation is None


def test_the_training_decoder_passes_hotwords_and_reads_a_broken_file_as_empty():
    base = _Transcriber("hello")
    decode = training_decoder(base, DecodeOptions(beam_size=3))
    assert decode("a.wav", "Kubeflow") == "hello"
    assert (base.calls[-1].hotwords, base.calls[-1].beam_size) == ("Kubeflow", 3)
    assert decode("broken", None) == ""


def test_whisper_names():
    assert is_whisper_name("tiny.en") and is_whisper_name("faster-whisper-large-v3")
    assert not is_whisper_name("Systran/faster-whisper-tiny") and not is_whisper_name("../tiny")
