"""Long files through faster-whisper's batched pipeline (asr.batched): the same transcript and the same segment
shape as the sequential path, on a ~70 s file of real LJSpeech clips, and the threshold choosing the path."""
from __future__ import annotations

import numpy as np
import pytest

import asr.batched as batched
from asr.audio import DEFAULT_CHUNK_S, SAMPLE_RATE, decode
from asr.engine import DecodeOptions, Segment, Word
from asr.metrics import wer
from tests.asr.conftest import write_wav

GAP_S = 0.6


@pytest.fixture(scope="module")
def long_file(ljspeech, tmp_path_factory) -> tuple:
    """About 70 s: LJSpeech clips in order with 0.6 s of silence between them, and the joined reference."""
    pieces, refs, total = [], [], 0.0
    for path, ref in ljspeech:
        samples = decode(path)
        pieces += [samples, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        refs.append(ref)
        total += len(samples) / SAMPLE_RATE + GAP_S
        if total > 70:
            break
    path = write_wav(tmp_path_factory.mktemp("batched") / "seventy.wav", np.concatenate(pieces))
    return path, " ".join(refs), total


@pytest.fixture(scope="module")
def spy():
    """Counts the calls of the batched decoder (the Transcriber looks it up at every call)."""
    calls = []
    real = batched.decode_batched

    def counting(engine, audio, opts):
        calls.append(len(audio) / SAMPLE_RATE)
        return real(engine, audio, opts)

    mp = pytest.MonkeyPatch()
    mp.setattr(batched, "decode_batched", counting)
    yield calls
    mp.undo()


@pytest.fixture(scope="module")
def both(transcriber, long_file, spy) -> tuple:
    """(batched transcript, sequential transcript) of the long file."""
    path = long_file[0]
    spy.clear()
    fast = transcriber.transcribe(path, DecodeOptions())
    assert spy, "a 70 s file under the default 60 s threshold went the sequential way"
    spy.clear()
    slow = transcriber.transcribe(path, DecodeOptions(batch_size=1))
    assert not spy
    return fast, slow


@pytest.mark.slow
def test_batched_transcript_as_good_as_sequential(both, long_file):
    fast, slow = both
    ref = long_file[1]
    fast_wer, slow_wer = wer([ref], [fast.text]), wer([ref], [slow.text])
    print(f"WER batched {fast_wer:.3f}, sequential {slow_wer:.3f}; segments {len(fast.segments)} vs "
          f"{len(slow.segments)}")
    assert fast_wer < 0.12  # measured ~0.05 for both here
    assert fast_wer <= slow_wer + 0.03
    assert fast.language == slow.language == "en"


@pytest.mark.slow
def test_batched_segments_have_the_sequential_shape(both, long_file):
    fast, slow = both
    assert abs(fast.duration - long_file[2]) < 0.5
    starts = [s.start for s in fast.segments]
    assert starts == sorted(starts)
    # sentences, not whole 30 s windows: about as many segments as the sequential path makes
    assert len(fast.segments) >= 0.5 * len(slow.segments) and max(s.end - s.start for s in fast.segments) < 20
    for s in fast.segments:
        assert 0 <= s.start <= s.end <= fast.duration
        assert s.text and s.words and s.token_probs
        assert s.text == " ".join(w.text for w in s.words)
        assert all(s.start <= w.start <= w.end <= s.end and 0 <= w.probability <= 1 for w in s.words)
        assert 0 <= s.confidence <= 1
    assert 0 <= fast.confidence <= 1


@pytest.mark.slow
def test_threshold_decides_the_path(transcriber, ljspeech, spy):
    clip = ljspeech[2][0]  # ~7 s
    spy.clear()
    short = transcriber.transcribe(clip, DecodeOptions())
    assert not spy  # under the default 60 s: sequential
    low = transcriber.transcribe(clip, DecodeOptions(batch_above_s=5))
    assert len(spy) == 1
    off = transcriber.transcribe(clip, DecodeOptions(batch_above_s=5, vad=False))
    assert len(spy) == 1  # without VAD there is nothing to batch by
    assert "types" in short.text and "types" in low.text and "types" in off.text
    assert low.segments[0].words and low.segments[0].token_probs


def test_a_chunk_holds_a_whole_batch_unless_told(transcriber):
    """120 s chunks left a batch of 8 half full (4 windows); the default chunk now holds the batch."""
    engine = transcriber.engine
    assert batched.batch_chunk_s(engine, DecodeOptions()) == 8 * batched.WINDOW_S
    assert batched.batch_chunk_s(engine, DecodeOptions(batch_size=16)) == 16 * batched.WINDOW_S
    for sequential in (DecodeOptions(batch_size=1), DecodeOptions(vad=False), DecodeOptions(batch_above_s=None),
                       DecodeOptions(batch_size=2)):  # never below the sequential path's chunk
        assert batched.batch_chunk_s(engine, sequential) == DEFAULT_CHUNK_S


@pytest.mark.slow
def test_a_chunk_named_wins(transcriber, long_file, spy):
    spy.clear()
    transcriber.transcribe(long_file[0], DecodeOptions(chunk_s=30, batch_above_s=20))
    assert len(spy) >= 2 and max(spy) < 31  # the ~70 s file in pieces of at most ~30 s, each batched


@pytest.mark.slow
def test_window_by_window_matches_the_batch(transcriber, long_file):
    """The CPU stand-in encodes and aligns window by window: the same numbers as the model's batch calls."""
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import pad_or_trim

    model = transcriber.engine.model
    audio = decode(long_file[0])
    windows = [audio[i * 30 * SAMPLE_RATE:(i + 1) * 30 * SAMPLE_RATE] for i in range(2)]
    features = ctranslate2.StorageView.from_array(
        np.stack([pad_or_trim(model.feature_extractor(w)[..., :-1]) for w in windows]))
    one_by_one = batched._OneWindowAtATime(model.model)
    whole, split = np.asarray(model.model.encode(features)), np.asarray(one_by_one.encode(features))
    assert split.shape == whole.shape
    assert np.abs(split - whole).max() < 0.05 * np.abs(whole).max()
    tokenizer = Tokenizer(model.hf_tokenizer, False, task="transcribe", language="en")
    tokens = [model.hf_tokenizer.encode(t).ids for t in (" Printing, in the only sense", " the invention")]
    encoded = ctranslate2.StorageView.from_array(whole)
    a = model.model.align(encoded, tokenizer.sot_sequence, tokens, [1500, 1500])
    b = one_by_one.align(encoded, tokenizer.sot_sequence, tokens, [1500, 1500])
    assert [len(r.text_token_probs) for r in a] == [len(r.text_token_probs) for r in b] == [len(t) for t in tokens]
    assert np.allclose([p for r in a for p in r.text_token_probs], [p for r in b for p in r.text_token_probs],
                       atol=1e-3)


def _words(spec: list[tuple[str, float, float]]) -> list[Word]:
    return [Word(s, e, t.strip(), 0.9) for t, s, e in spec]


def test_split_sentences_keeps_each_token_probability_with_its_sentence():
    vocab = {1: " Hello", 2: " world", 3: ".", 4: " How", 5: " are", 6: " you", 7: "?"}
    raw = [" Hello", " world.", " How", " are", " you?"]
    words = _words([(" Hello", 0.0, 0.4), (" world.", 0.5, 0.9), (" How", 1.2, 1.4), (" are", 1.5, 1.6),
                    (" you?", 1.7, 2.0)])
    seg = Segment(0.0, 30.0, "Hello world. How are you?", -0.2, 0.01, words=words,
                  token_probs=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    parts = batched.split_sentences(seg, raw, list(vocab), lambda ts: "".join(vocab[t] for t in ts))
    assert [p.text for p in parts] == ["Hello world.", "How are you?"]
    assert [p.token_probs for p in parts] == [[0.9, 0.8, 0.7], [0.6, 0.5, 0.4, 0.3]]
    assert [(p.start, p.end) for p in parts] == [(0.0, 0.9), (1.2, 2.0)]
    assert [len(p.words) for p in parts] == [2, 3] and parts[1].avg_logprob == -0.2

    # words that do not spell the tokens: kept whole rather than cut in the wrong place
    assert batched.split_sentences(seg, [" Hi", *raw[1:]], list(vocab),
                                   lambda ts: "".join(vocab[t] for t in ts)) == [seg]


def test_split_sentences_cuts_at_long_pauses_and_late_commas():
    spec = [(" one,", 0.0, 0.5), (" two", 0.6, 1.0), (" three", 2.5, 3.0), (" four", 3.1, 7.0), (" five,", 7.1, 7.6),
            (" six", 7.7, 8.0)]
    vocab = {i + 1: t for i, (t, _, _) in enumerate(spec)}
    seg = Segment(0.0, 8.0, "one, two three four five, six", -0.1, 0.0, words=_words(spec),
                  token_probs=[0.5] * len(spec))
    parts = batched.split_sentences(seg, [t for t, _, _ in spec], list(vocab),
                                    lambda ts: "".join(vocab[t] for t in ts))
    # an early comma is no cut; a 1.5 s pause is; a comma once the part has run 5 s is
    assert [p.text for p in parts] == ["one, two", "three four five,", "six"]


def test_longer_than_reads_ahead_only_as_needed():
    taken = []

    def chunks(n: int, seconds: float):
        for i in range(n):
            taken.append(i)
            yield i * seconds, np.zeros(int(seconds * SAMPLE_RATE), np.float32)

    again, long = batched.longer_than(chunks(5, 120), 60)
    assert long and taken == [0]
    assert [o for o, _ in again] == [0, 120, 240, 360, 480]
    taken.clear()
    again, long = batched.longer_than(chunks(3, 10), 60)
    assert not long and taken == [0, 1, 2] and len(list(again)) == 3



def test_settings_reach_the_decode_options():
    """ASR_BATCH_SIZE and ASR_BATCH_ABOVE_S go from the environment to every transcription the backend asks for."""
    from types import SimpleNamespace

    from backends.adapters.asr import ASRAdapter
    from backends.config import Settings

    default = ASRAdapter(Settings.from_env({}))._options(SimpleNamespace(language=None), {})
    assert (default.batch_size, default.batch_above_s) == (DecodeOptions().batch_size, DecodeOptions().batch_above_s)
    assert default.chunk_s is None  # the transcriber's own: a whole batch of windows for a long file
    opts = ASRAdapter(Settings.from_env({"ASR_BATCH_SIZE": "1", "ASR_BATCH_ABOVE_S": "300"}))._options(
        SimpleNamespace(language=None), {})
    assert (opts.batch_size, opts.batch_above_s) == (1, 300)
    with pytest.raises(ValueError, match="ASR_BATCH_SIZE"):
        Settings.from_env({"ASR_BATCH_SIZE": "eight"})
