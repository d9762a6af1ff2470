"""Does asr's score rank the clips Whisper gets wrong first? Which signal ranks them best? And what do its
transcripts save an annotator?

    python -m bench.asr_score_bench                    # tiny.en from $WEIGHTS_DIR; 198 clips: 28 min at load 8-20
    python -m bench.asr_score_bench --no-second-decode # without the beam-5 agreement candidate: about half that
    python -m bench.asr_score_bench --from bench/results/asr_score.json   # re-score a run's clips, no decoding

Every LJSpeech clip and every second spoken digit (FSDD) of ../shared/datasets is transcribed once, as the backend
does (greedy, word confidence on), and once more with beam 5 (the "agreement" candidate; its time is reported).
Each clip's segments are kept with what Whisper says of them (token and word probabilities and times,
no_speech_prob, avg_logprob, compression ratio, temperature), so every candidate score is computed from the same
transcription, the served one (`Transcript.confidence`) included. Reported: Spearman of each score with -WER per
clip, on LJSpeech, on the digits and pooled; then held out: over 200 random halves of the pool, candidates with a
weight to choose (the served rate weight, combinations learned by logistic regression) choose it on one half and
are measured on the other, every candidate on the same halves (mean, spread, and how often each beats the former
served score, the token product, on the same half). WER under two normalisations: asr.metrics' (case and
punctuation) and Whisper's English normaliser (numbers: "fifteenth" = "15th"; most LJSpeech "errors" of the first
are spelled-out numbers). Effort: seconds to type every transcript from scratch against correcting the
pre-annotations word by word (bench.effort.transcripts; constants and sources in asr.effort).
Writes bench/results/asr_score.json.

Findings (tiny.en, 2 busy cores; held out: mean +- std over the 200 halves): the served score -- per segment
prod(token probs) * P(speech) * the speaking-rate factor (asr.confidence.rate_factor), the least certain segment for
the file -- reaches 0.582 +- 0.053 pooled with its weight chosen on the other half (LJSpeech 0.514, FSDD 0.625)
against 0.489 +- 0.061 for the token product alone (the former served score): +0.093 +- 0.047 on the same halves,
above it on 96 % of them (0.625 against 0.520 with Whisper's normaliser). No other signal or combination tried does
better beyond the spread; the beam-5 agreement costs a second decode (+103 % of the time) and ranks worse (0.481).
The FSDD digits Whisper gets wrong are mostly one-word hallucinations made out of a very short stretch of audio
("Bye." for "five" in 0.2 s), which no token probability flags but the rate does. Caveat: a number written in
digits ("1469") is one word for several spoken, so it reads as slow speech and lowers the score.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from asr.confidence import NORMAL_WORDS_PER_S, MIN_SEGMENT_S, window_confidence
from asr.effort import TRANSCRIPT_COSTS
from asr.engine import DecodeOptions, Transcript, get_transcriber, word_count
from asr.metrics import normalize
from bench.effort import total, transcripts

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DIGITS = "zero one two three four five six seven eight nine".split()
SUBSETS = ("ljspeech", "fsdd", "pooled")
FLOOR = math.log(1e-12)  # log of "no confidence": empty transcripts, underflow


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


def segment_record(s) -> dict:
    """What Whisper says of one segment, for the candidates to be computed from."""
    return {"start": s.start, "end": s.end, "text": s.text, "avg_logprob": round(s.avg_logprob, 4),
            "no_speech_prob": round(s.no_speech_prob, 5), "compression_ratio": round(s.compression_ratio, 3),
            "temperature": s.temperature, "n_words": word_count(s),
            "token_probs": [round(p, 5) for p in s.token_probs],
            "words": [[w.start, w.end, round(w.probability, 5)] for w in s.words]}


# --- candidate scores: log-confidence of one segment (higher = more likely right) -------------------------------

def _log(p: float) -> float:
    return math.log(p) if p > 1e-12 else FLOOR


def _probs(seg: dict) -> np.ndarray:
    """The segment's token probabilities (its word probabilities where the engine reported no tokens)."""
    p = seg["token_probs"] or [w[2] for w in seg["words"]] or [0.0]
    return np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0))


def _word_logs(seg: dict) -> np.ndarray:
    """Log of faster-whisper's word probabilities (mean over a word's tokens, punctuation left out)."""
    return np.log(np.clip(np.asarray([w[2] for w in seg["words"]] or [0.0], dtype=np.float64), 1e-12, 1.0))


def _speech(seg: dict) -> float:
    return _log(min(max(1.0 - seg["no_speech_prob"], 0.0), 1.0))


def _rate_dev(seg: dict) -> float:
    """-|log(words per second / normal)|: 0 at the normal speaking rate."""
    rate = seg["n_words"] / max(seg["end"] - seg["start"], MIN_SEGMENT_S)
    return -abs(math.log(max(rate, 0.05) / NORMAL_WORDS_PER_S))


def _band(lo: float, hi: float) -> Callable[[dict], float]:
    def dev(seg: dict) -> float:
        rate = max(seg["n_words"] / max(seg["end"] - seg["start"], MIN_SEGMENT_S), 0.05)
        return -max(0.0, math.log(rate / hi), math.log(lo / rate))
    return dev


def _whisper_anomaly(seg: dict) -> float:
    """-(openai-whisper's word_anomaly_score summed over the words): improbable (< 0.15), too short (< 0.133 s) or
    too long (> 2 s) words."""
    score = 0.0
    for start, end, p in seg["words"]:
        d = end - start
        score += (p < 0.15) + max(0.0, 0.133 - d) * 15 + max(0.0, d - 2.0)
    return -score


def _low_k(k: int) -> Callable[[dict], float]:
    return lambda seg: float(np.sort(_probs(seg))[:k].mean()) + _speech(seg)


SEGMENT_SCORES: dict[str, tuple[str, Callable[[dict], float]]] = {
    "token_product": ("former served: prod(token probs) * P(speech)",
                      lambda s: float(_probs(s).sum()) + _speech(s)),
    **{f"lowest_{k}_tokens": (f"geometric mean of the {k} least likely tokens * P(speech)", _low_k(k))
       for k in (1, 2, 3, 5)},
    "mean_token_logprob": ("mean log-probability per token, * P(speech)",
                           lambda s: float(_probs(s).mean()) + _speech(s)),
    "logprob_per_second": ("sum of token log-probabilities per second of the segment, * P(speech)",
                           lambda s: float(_probs(s).sum()) / max(s["end"] - s["start"], MIN_SEGMENT_S) + _speech(s)),
    "word_product": ("prod(faster-whisper word probabilities) * P(speech)",
                     lambda s: float(_word_logs(s).sum()) + _speech(s)),
    "min_word": ("least likely word * P(speech)",
                 lambda s: float(_word_logs(s).min()) + _speech(s)),
    "speech": ("P(speech) = 1 - no_speech_prob", _speech),
    "avg_logprob": ("the decoding window's avg_logprob", lambda s: s["avg_logprob"]),
    "compression": ("-compression ratio of the window's text", lambda s: -s["compression_ratio"]),
    "temperature": ("-temperature of the accepted decode (fallbacks)", lambda s: -s["temperature"]),
    "rate": ("-|log(words per second / 2.5)|", _rate_dev),
    "rate_band_2_3.5": ("-distance of log(words per second) from [2, 3.5]", _band(2.0, 3.5)),
    "whisper_anomaly": ("-sum of openai-whisper's word_anomaly_score", _whisper_anomaly),
    "token_product_x_anomaly": ("token_product * exp(-whisper anomaly)",
                                lambda s: float(_probs(s).sum()) + _speech(s) + _whisper_anomaly(s)),
}


def candidate_scores(row: dict) -> dict[str, float]:
    """Every unfitted candidate for one clip: each segment's, the least certain segment for the file."""
    segs = row["segments"]
    out = {"served": _log(row["served"])}
    for name, (_, fn) in SEGMENT_SCORES.items():
        out[name] = min(fn(s) for s in segs) if segs else FLOOR
    out["token_product_sum"] = sum(SEGMENT_SCORES["token_product"][1](s) for s in segs) if segs else FLOOR
    out["token_product_duration_mean"] = (float(np.average([SEGMENT_SCORES["token_product"][1](s) for s in segs],
                                                           weights=[max(s["end"] - s["start"], MIN_SEGMENT_S)
                                                                    for s in segs])) if segs else FLOOR)
    old = [window_confidence(s["avg_logprob"], s["no_speech_prob"]) for s in segs]
    out["window_platt"] = _log(float(np.mean(old))) if segs else FLOOR
    if row.get("beam5") is not None:  # nothing recognised is no confidence here too, as in the served score
        out["agreement"] = FLOOR if not segs else -min(clip_wer(row["beam5"], row["hypothesis"]) if row["beam5"].strip()
                                else float(bool(row["hypothesis"].strip())), 1.0)
    return out


# weights chosen on one half: token_product + w * feature
TUNED = ("rate", "rate_band_2_3.5", "whisper_anomaly", "logprob_per_second", "compression", "temperature")
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
LEARNED = {  # logistic regression of "the clip is right" on these, fitted on one half
    "learned_token_speech_rate": ("token_product", "speech", "rate"),
    "learned_all_one_decode": ("token_product", "lowest_1_tokens", "mean_token_logprob", "speech", "avg_logprob",
                               "compression", "temperature", "rate", "whisper_anomaly", "min_word"),
}


def spearman(score, wer) -> float:
    rho = spearmanr(score, -np.asarray(wer))[0]
    return float(rho) if math.isfinite(rho) else float("nan")


def _fit_weight(rows: list[dict], feature: str, target: str) -> float:
    return max(WEIGHTS, key=lambda w: spearman([r["scores"]["token_product"] + w * r["scores"][feature]
                                                for r in rows], [r[target] for r in rows]))


def _fit_learned(rows: list[dict], features: tuple[str, ...], target: str) -> Callable[[list[dict]], np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    def x(rs):
        return np.array([[max(r["scores"][f], FLOOR) for f in features] for r in rs])
    xa = x(rows)
    mu, sd = xa.mean(0), xa.std(0) + 1e-9
    lr = LogisticRegression(C=1.0).fit((xa - mu) / sd, [r[target] == 0 for r in rows])
    return lambda rs: lr.decision_function((x(rs) - mu) / sd)


def _by_subset(rows: list[dict], score: np.ndarray, target: str) -> dict[str, float]:
    out = {}
    for subset in SUBSETS:
        idx = [i for i, r in enumerate(rows) if subset == "pooled" or r["dataset"] == subset]
        out[subset] = spearman(score[idx], [rows[i][target] for i in idx])
    return out


def held_out(rows: list[dict], target: str, halves: int = 200) -> dict:
    """Every candidate on the same random halves: chosen (weights, fits) on one half, measured on the other."""
    names = [n for n in rows[0]["scores"]]
    draws: dict[str, dict[str, list[float]]] = {}
    chosen: dict[str, list[float]] = {}
    rng = np.random.default_rng(0)
    for _ in range(halves):
        perm = rng.permutation(len(rows))
        a, b = [rows[i] for i in perm[:len(rows) // 2]], [rows[i] for i in perm[len(rows) // 2:]]
        preds = {n: np.array([r["scores"][n] for r in b]) for n in names}
        for f in TUNED:
            w = _fit_weight(a, f, target)
            chosen.setdefault(f"token_product+w*{f}", []).append(w)
            preds[f"token_product+w*{f}"] = np.array([r["scores"]["token_product"] + w * r["scores"][f] for r in b])
        for name, feats in LEARNED.items():
            if all(f in b[0]["scores"] for f in feats):
                preds[name] = _fit_learned(a, feats, target)(b)
        for n, p in preds.items():
            for subset, rho in _by_subset(b, p, target).items():
                draws.setdefault(n, {}).setdefault(subset, []).append(rho)
    base = np.array(draws["token_product"]["pooled"])
    out = {}
    for n, d in draws.items():
        v = {s: np.array(x) for s, x in d.items()}
        diff = v["pooled"] - base
        out[n] = {**{s: {"mean": round(float(np.nanmean(x)), 3), "std": round(float(np.nanstd(x)), 3)}
                     for s, x in v.items()},
                  "pooled_minus_token_product": {"mean": round(float(diff.mean()), 3),
                                                 "std": round(float(diff.std()), 3),
                                                 "share_of_halves_above": round(float(np.mean(diff > 0)), 3)}}
        if n in chosen:
            out[n]["weights_chosen"] = {str(w): int(np.sum(np.array(chosen[n]) == w)) for w in WEIGHTS}
    return out


def ranking(rows: list[dict], target: str, halves: int) -> dict:
    """Spearman of each unfitted candidate with -WER on all clips, and every candidate held out."""
    names = list(rows[0]["scores"])
    full = {n: {k: round(v, 3) for k, v in _by_subset(rows, np.array([r["scores"][n] for r in rows]), target).items()}
            for n in names}
    return {"all_clips": full, "held_out_halves": held_out(rows, target, halves)}


def effort(rows: list[dict]) -> dict:
    """Seconds to type every transcript from scratch against correcting the pre-annotations, per data set."""
    out = {}
    for subset in SUBSETS:
        part = [r for r in rows if subset == "pooled" or r["dataset"] == subset]
        e = total([transcripts(r["hypothesis_words"], r["reference"], r["duration"]) for r in part])
        out[subset] = {"scratch_s": round(e.scratch, 1), "assisted_s": round(e.assisted, 1), "saved": round(e.saved, 3)}
    out["costs"] = TRANSCRIPT_COSTS.__dict__
    return out


def transcribe_all(model: str, fsdd_step: int, second_decode: bool) -> tuple[list[dict], dict]:
    """Every clip decoded as the backend does (and with beam 5 when `second_decode`), with its timings."""
    tr = get_transcriber(model, os.environ.get("WEIGHTS_DIR") or str(SHARED / "models"))
    rows, timing = [], {"served_decode_s": 0.0, "beam5_decode_s": 0.0, "audio_s": 0.0}
    for dataset, path, ref in clips(fsdd_step):
        t0 = time.perf_counter()
        t: Transcript = tr.transcribe(path, DecodeOptions())
        t1 = time.perf_counter()
        beam = tr.transcribe(path, DecodeOptions(beam_size=5, word_confidence=False)).text if second_decode else None
        timing["served_decode_s"] += t1 - t0
        timing["beam5_decode_s"] += time.perf_counter() - t1
        timing["audio_s"] += t.duration
        rows.append({"dataset": dataset, "file": path.name, "reference": ref, "hypothesis": t.text, "beam5": beam,
                     "duration": round(t.duration, 3), "served": t.confidence,
                     "segments": [segment_record(s) for s in t.segments]})
    return rows, {"source": tr.spec.source, **{k: round(v, 1) for k, v in timing.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--fsdd-step", type=int, default=2, help="every n-th digit clip (300 in all)")
    parser.add_argument("--no-second-decode", action="store_true", help="skip the beam-5 agreement candidate")
    parser.add_argument("--halves", type=int, default=200)
    parser.add_argument("--from", dest="from_json",
                        help="a former asr_score.json: re-score its clips without decoding (its 'served' column "
                             "stays the score of the code that decoded them)")
    args = parser.parse_args()
    from whisper.normalizers import EnglishTextNormalizer  # openai-whisper (requirements-dev)

    english = EnglishTextNormalizer()
    load_start = os.getloadavg()[0]
    if args.from_json:
        former = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        rows, run = former["per_clip"], former["run"]
    else:
        rows, run = transcribe_all(args.model, args.fsdd_step, not args.no_second_decode)
    for r in rows:
        r["wer"], r["wer_whisper_norm"] = clip_wer(r["reference"], r["hypothesis"]), clip_wer(r["reference"],
                                                                                             r["hypothesis"], english)
        r["hypothesis_words"] = _digits_as_words(r["hypothesis"]) if r["dataset"] == "fsdd" else r["hypothesis"]
        r["scores"] = candidate_scores(r)
    described = {n: d for n, (d, _) in SEGMENT_SCORES.items()} | {
        "served": "served (Transcript.confidence): per segment prod(token probs) * P(speech) * rate_factor, the "
                  "least certain segment",
        "token_product_sum": "token_product multiplied over all segments instead of the least certain",
        "token_product_duration_mean": "token_product, duration-weighted mean over segments",
        "window_platt": "former-former: sigmoid(4.65 * window avg_logprob + 4.7) * P(speech), mean over segments",
        "agreement": "-WER between the served (greedy) transcript and a beam-5 decode",
        **{f"token_product+w*{f}": f"token_product + w * {f} in log space, w in {WEIGHTS} chosen on the other half"
           for f in TUNED},
        **{n: f"logistic regression of 'WER = 0' on {', '.join(f)}, fitted on the other half"
           for n, f in LEARNED.items()}}
    result = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "load_avg_start": round(load_start, 2), "load_avg_end": round(os.getloadavg()[0], 2)},
        "date": time.strftime("%Y-%m-%d"), "model": args.model, "run": run,
        "clips": {s: sum(r["dataset"] == s for r in rows) for s in ("ljspeech", "fsdd")},
        "mean_wer": {s: round(float(np.mean([r["wer"] for r in rows if s == "pooled" or r["dataset"] == s])), 4)
                     for s in SUBSETS},
        "candidates": described,
        "spearman_vs_neg_wer": ranking(rows, "wer", args.halves),
        "spearman_vs_neg_wer_whisper_normalizer": ranking(rows, "wer_whisper_norm", args.halves),
        "effort": effort(rows),
        "per_clip": [{k: v for k, v in r.items() if k not in ("scores", "hypothesis_words")} for r in rows],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "asr_score.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "per_clip"}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
