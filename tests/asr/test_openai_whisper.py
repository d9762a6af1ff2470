"""openai-whisper as the second engine, chosen when the model is a `.pt` checkpoint.

No real Whisper checkpoint can be downloaded here, so the checkpoint is a tiny Whisper built on the spot with
RANDOM weights (whisper.model.ModelDimensions with small dims, the English-only vocabulary, 80 mel bins), saved in
the format `whisper.load_model(path)` reads. Its transcripts are therefore garbage: these tests check the code path
(engine selection, loading, decoding through the same API as faster-whisper, timestamps, scores), not the words.
"""
from __future__ import annotations

from dataclasses import asdict

import pytest

whisper = pytest.importorskip("whisper")
torch = pytest.importorskip("torch")

from asr import engine, models  # noqa: E402
from asr.audio import SAMPLE_RATE, decode  # noqa: E402
from asr.engine import DecodeOptions, OpenAIWhisperEngine, Transcript, get_transcriber  # noqa: E402
from backends.adapters.asr import ASRAdapter  # noqa: E402
from backends.config import Settings  # noqa: E402
from backends.media import MediaFetcher  # noqa: E402
from tests.asr.conftest import speak  # noqa: E402

WHOLE = ('<View><Audio name="audio" value="$audio"/>'
         '<TextArea name="transcription" toName="audio" rows="4" editable="true" maxSubmissions="1"/></View>')
SEGMENTS = ('<View><Labels name="labels" toName="audio"><Label value="Speech"/></Labels>'
            '<Audio name="audio" value="$audio" language="en"/><TextArea name="transcription" toName="audio" '
            'rows="2" editable="true" perRegion="true"/></View>')


def _english_vocab() -> int:
    # English-only Whisper: the gpt2 encoding's tokens plus the special tokens, one language (51864 for *.en).
    from whisper.tokenizer import get_encoding

    n = get_encoding("gpt2").n_vocab
    assert n == 51864  # as in the real tiny.en / base.en checkpoints (51865 for the multilingual ones)
    return n


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """A tiny English-only Whisper with random weights, saved as `tiny-random.en.pt`. A 16-token text context
    caps each decode at 8 tokens: random weights never say end-of-text, and fall back through every temperature."""
    dims = whisper.model.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                                         n_audio_layer=1, n_vocab=_english_vocab(), n_text_ctx=16,
                                         n_text_state=64, n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = whisper.model.Whisper(dims)
    path = tmp_path_factory.mktemp("openai-whisper") / "tiny-random.en.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def _check(t: Transcript, duration: float) -> None:
    assert isinstance(t, Transcript) and isinstance(t.text, str)
    assert t.language == "en"  # `.en` in the checkpoint's name: English-only, not detected
    assert abs(t.duration - duration) < 0.1
    assert 0.0 <= t.confidence <= 1.0
    for s in t.segments:
        assert isinstance(s.text, str) and s.text
        assert 0.0 <= s.start <= s.end
        assert 0.0 <= s.confidence <= 1.0


def test_pt_checkpoint_selects_and_runs_openai_whisper(random_checkpoint, tmp_path):
    spec = models.resolve_model(random_checkpoint)
    assert spec.engine == models.OPENAI_WHISPER and spec.name == "tiny-random.en" and spec.english_only
    transcriber = get_transcriber(random_checkpoint, None, device="cpu")
    assert isinstance(transcriber.engine, OpenAIWhisperEngine)
    assert get_transcriber(random_checkpoint, None, device="cpu").engine is transcriber.engine  # loaded once
    clip = speak("The quick brown fox jumps over the lazy dog.", tmp_path / "fox.wav")
    duration = len(decode(clip)) / SAMPLE_RATE
    _check(transcriber.transcribe(clip), duration)
    # hotwords and a prompt (openai-whisper has no hotwords: both go into the initial prompt), and chunking
    _check(transcriber.transcribe(clip, DecodeOptions(hotwords="fox dog", initial_prompt="Animals.", chunk_s=1.5)),
           duration)


def test_backend_serves_a_pt_checkpoint(random_checkpoint, tmp_path, monkeypatch):
    """The backend with ASR_MODEL pointing at the checkpoint: the same predictions, both layouts, scores in [0, 1]."""
    monkeypatch.setattr(engine, "default_device", lambda: "cpu")
    settings = Settings.from_env({"ASR_MODEL": str(random_checkpoint)}).with_overrides(
        model_dir=tmp_path / "models", weights_dir=tmp_path / "no-weights", media_cache_dir=tmp_path / "media",
        local_roots=(tmp_path,))
    backend = ASRAdapter(settings)
    clip = speak("Seven eight nine.", tmp_path / "digits.wav")
    model = backend.load_model(None)
    assert isinstance(model.transcriber.engine, OpenAIWhisperEngine)
    tasks = [{"id": 1, "data": {"audio": str(clip)}}]
    for config in (WHOLE, SEGMENTS):
        [answer] = backend.predict(model, tasks, config, media=MediaFetcher(settings))
        assert answer.error is None, answer.error
        assert 0.0 <= answer.score <= 1.0
        for r in answer.result:
            assert r["type"] in ("textarea", "labels") and 0.0 <= r["score"] <= 1.0
