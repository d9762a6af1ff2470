"""Does asr's score rank the clips Whisper gets wrong first? And what do its transcripts save an annotator?

    python -m bench.asr_score_bench   # tiny.en from $WEIGHTS_DIR (../shared/models); 198 clips: 25 min at load 10

Every LJSpeech clip and every second spoken digit (FSDD) of ../shared/datasets is transcribed once, as the backend
does (word confidence on). From the same transcription come the new task score (`Transcript.confidence`: per segment
the product of its token probabilities times P(speech), the least certain segment for the file) and the former one
(the Platt-scaled average log-probability of each decoding window, duration-weighted over the segments), plus
variants for comparison. Reported: Spearman of each score with -WER per clip, on LJSpeech, on the digits, pooled,
and over 200 random halves of the pool (mean, spread) -- with WER under two normalisations: asr.metrics' (case and
punctuation) and Whisper's English normaliser (numbers: "fifteenth" = "15th"; most LJSpeech "errors" of the first
are spelled-out numbers). Effort: seconds to type every transcript from scratch against correcting the
pre-annotations word by word (bench.effort.transcripts; constants and sources in asr.effort).
Writes bench/results/asr_score.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from asr.confidence import sequence_confidence, window_confidence
from asr.effort import TRANSCRIPT_COSTS
from asr.engine import DecodeOptions, Transcript, get_transcriber
from asr.metrics import normalize
from bench.effort import total, transcripts

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DIGITS = "zero one two three four five six seven eight nine".split()


def clips(fsdd_step: int = 2) -> list[tuple[str, Path, str]]:
    """(data set, file, reference) for every LJSpeech clip and every `fsdd_step`-th digit."""
    lj = SHARED / "datasets" / "speech" / "ljspeech"
    rows = [ln.split("|") for ln in (lj / "metadata.csv").read_text(encoding="utf-8").splitlines() if ln]
    out = sorted(("ljspeech", lj / "wavs" / f"{r[0]}.flac", r[2]) for r in rows)
    fsdd = SHARED / "datasets" / "speech" / "fsdd"
    with open(fsdd / "transcripts.tsv", encoding="utf-8") as f:
        out += [("fsdd", fsdd / r["file"], r["transcript"]) for r in csv.DictReader(f, delimiter="\t")][::fsdd_step]
    return out


def _digits_as_words(text: str) -> str:
    return " ".join(DIGITS[int(w)] if w.isdigit() and len(w) == 1 else w for w in normalize(text).split())


def clip_wer(ref: str, hyp: str, normalizer=None) -> float:
    """One clip's WER; an empty hypothesis is 1 (every word missing)."""
    import jiwer

    r, h = (normalizer(ref), normalizer(hyp)) if normalizer else (_digits_as_words(ref), _digits_as_words(hyp))
    if not r.strip():
        return float(bool(h.strip()))
    return float(jiwer.wer(r, h)) if h.strip() else 1.0


def scores(t: Transcript) -> dict[str, float]:
    """The served score and the alternatives it was chosen among, from one transcription."""
    segs = t.segments
    if not segs:
        return {k: 0.0 for k in ("new", "old", "word_product", "word_mean", "token_product_mean")}
    w = np.array([max(s.end - s.start, 0.0) for s in segs])
    old = np.array([window_confidence(s.avg_logprob, s.no_speech_prob) for s in segs])
    words = [w_.probability for s in segs for w_ in s.words]
    return {
        "new": t.confidence,  # what the backend serves
        "old": float((w * old).sum() / w.sum()) if w.sum() > 0 else float(old.mean()),
        # faster-whisper's own word probabilities (mean over a word's tokens, punctuation dropped)
        "word_product": min(sequence_confidence([x.probability for x in s.words], s.no_speech_prob) for s in segs),
        "word_mean": float(np.mean(words)) if words else 0.0,
        # token probabilities, duration-weighted mean over segments instead of the least certain segment
        "token_product_mean": float((w * [s.confidence for s in segs]).sum() / w.sum()) if w.sum() > 0 else 0.0,
    }


def spearman(score: list[float], wer: list[float]) -> float:
    rho = spearmanr(score, -np.asarray(wer))[0]
    return round(float(rho), 3) if math.isfinite(rho) else float("nan")


def ranking(rows: list[dict], names: list[str], target: str, halves: int = 200) -> dict:
    """Spearman of each score with -WER: per data set, pooled, and over random halves of the pool."""
    out: dict = {}
    for subset in ("ljspeech", "fsdd", "pooled"):
        part = [r for r in rows if subset == "pooled" or r["dataset"] == subset]
        out[subset] = {n: spearman([r["scores"][n] for r in part], [r[target] for r in part]) for n in names}
    rng = np.random.default_rng(0)
    draws = {n: [] for n in names}
    for _ in range(halves):
        idx = rng.choice(len(rows), len(rows) // 2, replace=False)
        for n in names:
            draws[n].append(spearman([rows[i]["scores"][n] for i in idx], [rows[i][target] for i in idx]))
    out["random_halves"] = {n: {"mean": round(float(np.mean(v)), 3), "std": round(float(np.std(v)), 3),
                                "p5": round(float(np.percentile(v, 5)), 3)} for n, v in draws.items()}
    new_wins = np.mean(np.array(draws["new"]) > np.array(draws["old"]))
    out["random_halves"]["new_above_old"] = round(float(new_wins), 3)
    return out


def effort(rows: list[dict]) -> dict:
    """Seconds to type every transcript from scratch against correcting the pre-annotations, per data set."""
    out = {}
    for subset in ("ljspeech", "fsdd", "pooled"):
        part = [r for r in rows if subset == "pooled" or r["dataset"] == subset]
        e = total([transcripts(r["hypothesis_words"], r["reference"], r["duration"]) for r in part])
        out[subset] = {"scratch_s": round(e.scratch, 1), "assisted_s": round(e.assisted, 1), "saved": round(e.saved, 3)}
    out["costs"] = TRANSCRIPT_COSTS.__dict__
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--fsdd-step", type=int, default=2, help="every n-th digit clip (300 in all)")
    args = parser.parse_args()
    from whisper.normalizers import EnglishTextNormalizer  # openai-whisper (requirements-dev)

    english = EnglishTextNormalizer()
    weights = os.environ.get("WEIGHTS_DIR") or str(SHARED / "models")
    tr = get_transcriber(args.model, weights)
    load_start = os.getloadavg()[0]
    rows, wall, audio = [], 0.0, 0.0
    for dataset, path, ref in clips(args.fsdd_step):
        t0 = time.perf_counter()
        t = tr.transcribe(path, DecodeOptions())
        wall += time.perf_counter() - t0
        audio += t.duration
        rows.append({"dataset": dataset, "file": path.name, "reference": ref, "hypothesis": t.text,
                     "hypothesis_words": _digits_as_words(t.text) if dataset == "fsdd" else t.text,
                     "duration": t.duration, "wer": clip_wer(ref, t.text),
                     "wer_whisper_norm": clip_wer(ref, t.text, english), "scores": scores(t)})
    names = list(rows[0]["scores"])
    result = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "load_avg_start": round(load_start, 2), "load_avg_end": round(os.getloadavg()[0], 2)},
        "date": time.strftime("%Y-%m-%d"), "model": args.model, "source": tr.spec.source,
        "clips": {"ljspeech": sum(r["dataset"] == "ljspeech" for r in rows),
                  "fsdd": sum(r["dataset"] == "fsdd" for r in rows)},
        "rtf_audio_per_wall_s": round(audio / wall, 2),
        "mean_wer": {s: round(float(np.mean([r["wer"] for r in rows if s == "pooled" or r["dataset"] == s])), 4)
                     for s in ("ljspeech", "fsdd", "pooled")},
        "scores": {"new": "served: min over segments of prod(token probs) * (1 - no_speech_prob)",
                   "old": "former: sigmoid(4.65 * window avg_logprob + 4.7) * (1 - no_speech_prob), "
                          "duration-weighted over segments",
                   "word_product": "as new, over faster-whisper's word probabilities",
                   "word_mean": "mean of faster-whisper's word probabilities",
                   "token_product_mean": "as new, duration-weighted mean over segments instead of the minimum"},
        "spearman_vs_neg_wer": ranking(rows, names, "wer"),
        "spearman_vs_neg_wer_whisper_normalizer": ranking(rows, names, "wer_whisper_norm"),
        "effort": effort(rows),
        "per_clip": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "scores"}
                     | {"scores": {k: round(v, 6) for k, v in r["scores"].items()}} for r in rows],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "asr_score.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "per_clip"}, indent=1))


if __name__ == "__main__":
    main()
