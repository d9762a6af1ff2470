"""ASR benchmark (by hand, not CI): real-time factor, peak memory and WER per engine and model, and the confidence
calibration fit.

    .venv/bin/python -m bench.asr_bench --out bench/results                      # tiny.en from $WEIGHTS_DIR
    .venv/bin/python -m bench.asr_bench --out bench/results --model tiny.en --model /path/to/faster-whisper-base
    .venv/bin/python -m bench.asr_bench --probe   # duration: PyAV header vs ffprobe vs decoding, 3 h files

Each model runs in its own subprocess so that its peak RSS (ru_maxrss) is its own. Real-time factor here is audio
seconds per wall second (higher is faster), over the 48 LJSpeech clips plus 60 spoken digits. Writes asr.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DIGITS = "zero one two three four five six seven eight nine".split()


def _clips() -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    lj = SHARED / "datasets" / "speech" / "ljspeech"
    rows = [ln.split("|") for ln in (lj / "metadata.csv").read_text(encoding="utf-8").splitlines() if ln]
    ljs = sorted((lj / "wavs" / f"{r[0]}.flac", r[2]) for r in rows)
    fsdd = SHARED / "datasets" / "speech" / "fsdd"
    with open(fsdd / "transcripts.tsv", encoding="utf-8") as f:
        digits = [(fsdd / r["file"], r["transcript"]) for r in csv.DictReader(f, delimiter="\t")][::5]
    return ljs, digits


def run_one(model: str, beam_size: int) -> dict:
    """Benchmark one model in this process (called in a subprocess by main)."""
    import numpy as np

    from asr.engine import DecodeOptions, get_transcriber
    from asr.metrics import normalize, wer

    weights = os.environ.get("WEIGHTS_DIR") or str(SHARED / "models")
    t0 = time.perf_counter()
    tr = get_transcriber(model, weights)
    load_s = time.perf_counter() - t0
    ljs, digits = _clips()
    opts = DecodeOptions(beam_size=beam_size)
    out: dict = {"model": model, "engine": tr.engine.name, "source": tr.spec.source, "device": tr.engine.device,
                 "compute_type": tr.engine.compute_type, "beam_size": beam_size, "load_s": round(load_s, 2)}
    audio_s = wall = 0.0
    refs, hyps, lp, acc, conf_lj = [], [], [], [], []
    for path, ref in ljs:
        t = time.perf_counter()
        r = tr.transcribe(path, opts)
        wall += time.perf_counter() - t
        audio_s += r.duration
        refs.append(ref)
        hyps.append(r.text)
        conf_lj.append(r.confidence)
        if r.segments:
            lp.append(float(np.average([s.avg_logprob for s in r.segments],
                                       weights=[max(s.end - s.start, 0.01) for s in r.segments])))
            acc.append(1 - min(wer([ref], [r.text]), 1.0))
    out["ljspeech"] = {"clips": len(ljs), "wer": round(wer(refs, hyps), 4), "audio_s": round(audio_s, 1),
                       "wall_s": round(wall, 1), "rtf": round(audio_s / wall, 2),
                       "mean_confidence": round(float(np.mean(conf_lj)), 3)}
    right, d_audio, d_wall, empty = 0, 0.0, 0.0, 0
    for path, ref in digits:
        t = time.perf_counter()
        r = tr.transcribe(path, opts)
        d_wall += time.perf_counter() - t
        d_audio += r.duration
        words = [DIGITS[int(w)] if w.isdigit() and len(w) == 1 else w for w in normalize(r.text).split()]
        right += words == [ref]
        empty += not r.segments
        if r.segments:
            lp.append(float(np.average([s.avg_logprob for s in r.segments],
                                       weights=[max(s.end - s.start, 0.01) for s in r.segments])))
            acc.append(1.0 if words == [ref] else 0.0)
    # short clips are padded to Whisper's 30 s window, so their real-time factor is far lower than for speech
    out["digits"] = {"clips": len(digits), "accuracy": round(right / len(digits), 3), "empty": empty,
                     "rtf": round(d_audio / d_wall, 2)}
    out["calibration_data"] = {"avg_logprob": lp, "accuracy": acc}
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def probe_timing(hours: float = 3.0, repeats: int = 20) -> dict:
    """How long finding out a file's duration takes: the header through PyAV in-process (what asr does before
    decoding, `asr.audio.probe_duration`) against an `ffprobe` subprocess, and against decoding the whole file."""
    import tempfile

    from asr.audio import iter_chunks, probe_duration

    out: dict = {"hours": hours}
    with tempfile.TemporaryDirectory() as tmp:
        for ext, codec in (("flac", ["-c:a", "flac"]), ("mp3", ["-c:a", "libmp3lame", "-b:a", "32k"]),
                           ("ogg", ["-c:a", "libvorbis", "-q:a", "0"])):
            path = Path(tmp) / f"long.{ext}"
            _ffmpeg("-f", "lavfi", "-i", f"anoisesrc=r=16000:a=0.001:d={hours * 3600:g}", "-ac", "1", *codec,
                    str(path))
            t = time.perf_counter()
            for _ in range(repeats):
                declared = probe_duration(path)
            pyav_ms = (time.perf_counter() - t) / repeats * 1000
            t = time.perf_counter()
            for _ in range(repeats):
                subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                str(path)], check=True, capture_output=True)
            ffprobe_ms = (time.perf_counter() - t) / repeats * 1000
            t = time.perf_counter()
            decoded = sum(len(c) for _, c in iter_chunks(path, chunk_s=600)) / 16000
            decode_s = time.perf_counter() - t
            out[ext] = {"bytes": path.stat().st_size, "declared_s": round(declared or -1, 2),
                        "decoded_s": round(decoded, 2), "pyav_header_ms": round(pyav_ms, 2),
                        "ffprobe_ms": round(ffprobe_ms, 2), "decode_all_s": round(decode_s, 2)}
            print(ext, out[ext], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--model", action="append", help="model name or path (repeatable); default tiny.en")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help="only time duration probes (asr_probe.json)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.beam_size)))
        return
    if args.probe:
        result = {"date": time.strftime("%Y-%m-%d"), "load_avg_start": round(os.getloadavg()[0], 2),
                  "probe": probe_timing()}
        result["load_avg_end"] = round(os.getloadavg()[0], 2)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "asr_probe.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return
    from asr.confidence import DEFAULT_CALIBRATION, fit_calibration

    results = []
    for model in args.model or ["tiny.en"]:
        proc = subprocess.run([sys.executable, "-m", "bench.asr_bench", "--one", model, "--beam-size",
                               str(args.beam_size)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            results.append({"model": model, "error": proc.stderr.strip().splitlines()[-1:]})
            print(f"{model}: failed: {proc.stderr[-500:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        data = r.pop("calibration_data")
        cal = fit_calibration(data["avg_logprob"], data["accuracy"])
        r["calibration_fit"] = {"a": round(cal.a, 3), "b": round(cal.b, 3), "n": len(data["accuracy"]),
                                "default_a": DEFAULT_CALIBRATION.a, "default_b": DEFAULT_CALIBRATION.b}
        results.append(r)
        print(json.dumps(r))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "asr.json").write_text(json.dumps({
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
