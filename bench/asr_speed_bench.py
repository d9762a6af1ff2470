"""asr speed on a long file (by hand, not CI): raw faster-whisper against labelloop's batched and sequential paths.

    .venv/bin/python -m bench.asr_speed_bench --out bench/results             # ~10 min of audio, 3 rounds
    .venv/bin/python -m bench.asr_speed_bench --out bench/results --busy      # + one round beside a busy process

The file is LJSpeech clips (../shared/datasets/speech/ljspeech) joined in order, repeated until it lasts
`--minutes`, with 0.3-1.2 s of silence between clips; their normalised texts are the reference for WER. Each round
runs the three variants, in an order rotated from round to round, on the same model (tiny.en from $WEIGHTS_DIR,
int8) with the same CPU threads (CPU_THREADS, else every core this process may use):

- raw: `faster_whisper.WhisperModel.transcribe(path, beam_size=1, language="en")`, the plain library call (no VAD,
  no word timestamps);
- batched: `asr.engine.Transcriber.transcribe(path)` as the asr backend calls it (VAD, word probabilities for the
  confidences; a file over 60 s goes through `asr.batched`);
- sequential: the same with `batch_size=1` (the path every file took before).

RTF is wall seconds per audio second (lower is faster); a variant's ratio is the median over rounds of its time
over raw's time in the same round. `--busy` adds a round in which another process multiplies matrices on every core
the whole time (another backend busy beside this one): the ratios should stay close to the quiet rounds'. Writes
asr_speed.json with the load average at start and end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
VARIANTS = ("raw", "batched", "sequential")
_BUSY = "import numpy as np\na = np.random.rand(600, 600)\nwhile True:\n    a = np.tanh(a @ a)\n"


def long_file(minutes: float, out: Path) -> tuple[Path, str, float]:
    """LJSpeech clips joined until `minutes` long, as a 16 kHz wav: (path, reference text, seconds)."""
    from scipy.io import wavfile

    from asr.audio import SAMPLE_RATE, decode

    lj = SHARED / "datasets" / "speech" / "ljspeech"
    rows = [ln.split("|") for ln in (lj / "metadata.csv").read_text(encoding="utf-8").splitlines() if ln]
    clips = sorted((lj / "wavs" / f"{r[0]}.flac", r[2]) for r in rows)
    rng = np.random.default_rng(0)
    pieces, refs, total, i = [], [], 0.0, 0
    while total < minutes * 60:
        path, ref = clips[i % len(clips)]
        samples = decode(path)
        gap = np.zeros(int(SAMPLE_RATE * rng.uniform(0.3, 1.2)), np.float32)
        pieces += [samples, gap]
        refs.append(ref)
        total += (len(samples) + len(gap)) / SAMPLE_RATE
        i += 1
    wavfile.write(out, SAMPLE_RATE, (np.clip(np.concatenate(pieces), -1, 1) * 32767).astype(np.int16))
    return out, " ".join(refs), total


def _runners(weights: str, threads: int) -> dict:
    from faster_whisper import WhisperModel

    from asr.engine import DecodeOptions, get_transcriber

    raw = WhisperModel(str(Path(weights) / "faster-whisper-tiny.en"), device="cpu", compute_type="int8",
                       cpu_threads=threads)
    tr = get_transcriber("tiny.en", weights)
    return {
        "raw": lambda p: " ".join(s.text for s in raw.transcribe(str(p), beam_size=1, language="en")[0]),
        "batched": lambda p: tr.transcribe(p, DecodeOptions()).text,
        "sequential": lambda p: tr.transcribe(p, DecodeOptions(batch_size=1)).text,
    }


def _round(runners: dict, path: Path, ref: str, seconds: float, order: tuple[str, ...]) -> dict:
    from asr.metrics import wer

    out = {}
    for name in order:
        t = time.perf_counter()
        text = runners[name](path)
        wall = time.perf_counter() - t
        out[name] = {"wall_s": round(wall, 2), "rtf": round(wall / seconds, 4), "wer": round(wer([ref], [text]), 4),
                     "load_1min": round(os.getloadavg()[0], 2)}
        print(f"  {name:10s} {wall:6.1f} s  RTF {wall / seconds:.4f}  WER {out[name]['wer']:.4f}  "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def _summary(rounds: list[dict]) -> dict:
    out = {}
    for name in VARIANTS:
        rtfs = [r[name]["rtf"] for r in rounds]
        ratios = [r[name]["wall_s"] / r["raw"]["wall_s"] for r in rounds]
        out[name] = {"rtf_median": round(float(np.median(rtfs)), 4), "rtf_min": round(min(rtfs), 4),
                     "ratio_to_raw_median": round(float(np.median(ratios)), 3),
                     "ratio_to_raw": [round(x, 3) for x in ratios], "wer": rounds[0][name]["wer"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="one more round beside a process busy on every core")
    args = parser.parse_args()

    from backends.threads import apply_threads, thread_budget

    threads = apply_threads(thread_budget())
    weights = os.environ.get("WEIGHTS_DIR") or str(SHARED / "models")
    result: dict = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
                    "cores": len(os.sched_getaffinity(0)), "cpu_threads": threads, "model": "tiny.en int8",
                    "load_avg_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        path, ref, seconds = long_file(args.minutes, Path(tmp) / "long.wav")
        result["audio_s"] = round(seconds, 1)
        runners = _runners(weights, threads)
        warm = SHARED / "datasets" / "speech" / "ljspeech" / "wavs" / "LJ001-0001.flac"
        for name in VARIANTS:  # first-call allocations, the VAD model
            runners[name](warm)
        rounds = []
        for i in range(args.rounds):
            order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
            print(f"round {i + 1}: {', '.join(order)}", flush=True)
            rounds.append(_round(runners, path, ref, seconds, order))
        result["rounds"] = rounds
        result["summary"] = _summary(rounds)
        if args.busy:
            busy = subprocess.Popen([sys.executable, "-c", _BUSY], env={**os.environ, "OMP_NUM_THREADS": str(
                len(os.sched_getaffinity(0))), "OPENBLAS_NUM_THREADS": str(len(os.sched_getaffinity(0)))})
            try:
                time.sleep(2)
                print("round beside a busy process", flush=True)
                beside = _round(runners, path, ref, seconds, VARIANTS)
            finally:
                busy.kill()
                busy.wait()
            result["beside_busy_process"] = {
                "busy": "numpy matrix products on every core, in another process", "round": beside,
                "ratio_to_raw": {n: round(beside[n]["wall_s"] / beside["raw"]["wall_s"], 3) for n in VARIANTS}}
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "asr_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
