"""Long files through faster-whisper's batched pipeline (`BatchedInferencePipeline`): the speech VAD finds is packed
into 30-second windows that are decoded together, without the sequential path's overlapping windows and
temperature fallbacks. The segments come out in the sequential path's shape (sentences with their words, word and
token probabilities), so nothing downstream can tell the two apart except by the time taken.

On CPU only the decoder gains from a batch: encoding or aligning eight windows at once was 1.6x and 1.4x slower than
one after another on 2 cores (cache-bound), so `_OneWindowAtATime` encodes and aligns window by window and
generates the whole batch together. The voice-activity model is faster-whisper's own Silero ONNX file, shipped in
the package (`faster_whisper/assets`): nothing is downloaded.
"""
from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Iterator

import ctranslate2
import numpy as np

from .audio import DEFAULT_CHUNK_S, SAMPLE_RATE
from .engine import DecodeOptions, FasterWhisperEngine, Segment, segments_with_token_probs

log = logging.getLogger(__name__)

WINDOW_S = 30.0  # Whisper decodes 30-second windows
SENTENCE_PAUSE_S = 1.0  # a pause this long between two words ends a segment even without a full stop
# a sentence that has run this long is cut at its next comma: the sequential path's segments are about 5 s long,
# and a segment's confidence (a product over its tokens) is only comparable between segments of similar length
CLAUSE_AFTER_S = 5.0
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")
_CLAUSE_END = re.compile(r"[,;:][\"')\]]*$")

Chunks = Iterator[tuple[float, np.ndarray]]
Decode = Callable[[np.ndarray, DecodeOptions], tuple[list[Segment], str | None]]


def longer_than(chunks: Chunks, seconds: float) -> tuple[Chunks, bool]:
    """Whether the audio `chunks` stream (offset, samples) holds more than `seconds`, and the same stream again.

    Reads ahead only as far as needed: the first chunk settles it whenever chunks are longer than `seconds`."""
    held: list[tuple[float, np.ndarray]] = []
    total = 0.0
    for chunk in chunks:
        held.append(chunk)
        total += len(chunk[1]) / SAMPLE_RATE
        if total > seconds:
            break

    def again() -> Chunks:
        while held:  # popped, so that a chunk is freed once decoded, as without the look-ahead
            yield held.pop(0)
        yield from chunks

    return again(), total > seconds


def batchable(engine, opts: DecodeOptions) -> bool:
    """Whether a long file may go through the batched pipeline: it needs faster-whisper, VAD and a batch of 2."""
    return (opts.batch_above_s is not None and isinstance(engine, FasterWhisperEngine) and opts.vad
            and opts.batch_size >= 2)


def batch_chunk_s(engine, opts: DecodeOptions) -> float:
    """The chunk a file is streamed in when `opts` names none: a whole batch of windows where the batched path may
    take the file (a batch generates as many windows a second as it holds, up to 8 on 2 cores), else
    DEFAULT_CHUNK_S. A file short enough for the sequential path fits in one chunk either way.

    Memory follows the chunk: 10 minutes of speech peaked ~85 MiB higher in 240 s chunks than in 120 s ones
    (faster-whisper's VAD scores a whole chunk at once)."""
    if not batchable(engine, opts):
        return DEFAULT_CHUNK_S
    return max(DEFAULT_CHUNK_S, opts.batch_size * WINDOW_S, opts.batch_above_s)


def plan(engine, chunks: Chunks, opts: DecodeOptions) -> tuple[Chunks, Decode | None]:
    """How a file is decoded: its chunks, and the batched decoder when it is longer than `opts.batch_above_s`, else
    None."""
    if not batchable(engine, opts):
        return chunks, None
    chunks, long = longer_than(chunks, opts.batch_above_s)
    if not long:
        return chunks, None
    return chunks, lambda audio, o: decode_batched(engine, audio, o)


class _OneWindowAtATime:
    """Stands in for CTranslate2's Whisper model: `encode` and `align` run window by window (faster on CPU),
    everything else, `generate` included, goes to the model with the whole batch."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    @staticmethod
    def _rows(storage) -> list[ctranslate2.StorageView]:
        arr = np.asarray(storage)
        return [ctranslate2.StorageView.from_array(np.ascontiguousarray(arr[i:i + 1])) for i in range(len(arr))]

    def encode(self, features, to_cpu: bool = False):
        if features.shape[0] == 1:
            return self._model.encode(features, to_cpu=to_cpu)
        outs = [np.asarray(self._model.encode(row, to_cpu=to_cpu)) for row in self._rows(features)]
        return ctranslate2.StorageView.from_array(np.concatenate(outs))

    def align(self, encoder_output, start_sequence, text_tokens, num_frames, **kwargs):
        if len(text_tokens) == 1:
            return self._model.align(encoder_output, start_sequence, text_tokens, num_frames, **kwargs)
        frames = num_frames if isinstance(num_frames, (list, tuple)) else [num_frames] * len(text_tokens)
        return [result for row, tokens, n in zip(self._rows(encoder_output), text_tokens, frames)
                for result in self._model.align(row, start_sequence, [tokens], [n], **kwargs)]


def _pipeline_model(engine: FasterWhisperEngine):
    """The WhisperModel the pipeline runs on: the engine's own on GPU; on CPU a shallow copy of it (sharing the
    loaded weights and tokenizer) whose CTranslate2 model encodes and aligns one window at a time. The copy keeps
    the engine's token-probability tap underneath, so recording works the same on both paths."""
    if engine.device != "cpu":
        return engine.model
    model = copy.copy(engine.model)
    model.model = _OneWindowAtATime(engine.model.model)
    return model


def decode_batched(engine: FasterWhisperEngine, audio: np.ndarray,
                   opts: DecodeOptions) -> tuple[list[Segment], str | None]:
    """Decode `audio` (16 kHz mono) with the batched pipeline; segments as `FasterWhisperEngine.transcribe` gives
    them (times from the start of `audio`)."""
    from faster_whisper import BatchedInferencePipeline

    # One pipeline per call: it keeps the last speech time of the file being decoded
    pipeline = BatchedInferencePipeline(_pipeline_model(engine))
    with engine._tap.recording() as probs:
        windows, info = pipeline.transcribe(
            audio, language=opts.language, beam_size=opts.beam_size, batch_size=opts.batch_size,
            hotwords=opts.hotwords or None, initial_prompt=opts.initial_prompt or None,
            word_timestamps=opts.word_confidence,
            # Whisper's own segment timestamps would drop each window's unfinished last sentence (the sequential
            # path decodes it again in the next window; a batch has none): segments are cut from the words instead
            without_timestamps=True)
        windows = list(windows)  # the generator decodes: consume it while recording
    out = segments_with_token_probs(windows, probs, engine._eot, opts.word_confidence)
    decode = engine.model.hf_tokenizer.decode
    parts = [part for seg, window in zip(out, windows)
             for part in split_sentences(seg, [w.word for w in window.words or ()],
                                         [t for t in window.tokens if t < engine._eot], decode)]
    end = len(audio) / SAMPLE_RATE  # word times are estimates and may run a little past the audio
    for part in parts:
        part.start, part.end = min(part.start, end), min(part.end, end)
        for w in part.words:
            w.start, w.end = min(w.start, end), min(w.end, end)
    return parts, info.language


def _cuts(seg: Segment) -> list[int]:
    """Indices of the words after which `seg` is cut: sentence ends, long pauses, and commas in long sentences."""
    cuts, start = [], seg.words[0].start
    for i, (w, nxt) in enumerate(zip(seg.words, seg.words[1:])):
        if (_SENTENCE_END.search(w.text) or nxt.start - w.end >= SENTENCE_PAUSE_S
                or (_CLAUSE_END.search(w.text) and w.end - start >= CLAUSE_AFTER_S)):
            cuts.append(i)
            start = nxt.start
    return cuts


def split_sentences(seg: Segment, raw_words: list[str], text_tokens: list[int],
                    decode: Callable[[list[int]], str]) -> list[Segment]:
    """`seg` (a whole window) cut into sentences at its words, each with its own words and token probabilities.

    `raw_words` are faster-whisper's word strings (leading spaces kept), which concatenate to the decoded text
    tokens; a cut is made only where it falls on a token boundary, so every token probability stays with its
    sentence. A segment without words (word confidence off) stays whole."""
    cuts = _cuts(seg) if seg.words and len(raw_words) == len(seg.words) else []
    if not cuts:
        return [seg]
    lengths = {len(decode(text_tokens[:k])): k for k in range(len(text_tokens) + 1)}
    if "".join(raw_words) != decode(text_tokens) or len(seg.token_probs) not in (0, len(text_tokens)):
        log.debug("words and tokens do not line up; segment kept whole: %r", seg.text[:80])
        return [seg]
    bounds = [(0, 0)]
    for i in cuts:
        k = lengths.get(len("".join(raw_words[:i + 1])))
        if k is not None:
            bounds.append((i + 1, k))
    bounds.append((len(seg.words), len(text_tokens)))
    parts = []
    for (w0, t0), (w1, t1) in zip(bounds, bounds[1:]):
        words = seg.words[w0:w1]
        parts.append(Segment(words[0].start, words[-1].end, "".join(raw_words[w0:w1]).strip(), seg.avg_logprob,
                             seg.no_speech_prob, words=words,
                             token_probs=seg.token_probs[t0:t1] if seg.token_probs else []))
    return parts
