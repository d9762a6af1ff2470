"""Do the models collapse when another process shares the cores, and does OpenMP's wait policy decide it?

PyTorch (YOLO detection) and CTranslate2 (faster-whisper) run their CPU work on OpenMP thread pools. By default an
OpenMP thread that reaches a barrier spins for a while before it sleeps; when another process holds a core, the
spinning threads take turns with it and with each other, and a forward pass can take many times longer.
`OMP_WAIT_POLICY=PASSIVE` makes them sleep at once. This bench times both models in fresh processes (the policy is
read when the OpenMP runtime loads), for every variant (threads 1 or 2, policy default or PASSIVE), alternated
round by round, on a machine as it is and beside `--busy` single-thread busy loops (another process at work).

    .venv/bin/python -m bench.threads_bench --out bench/results

Writes `threads.json`: per load, variant and model the time per item in every round, medians, and each variant's
ratio to the default (2 threads, default policy) round by round, with the load average at start and end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
# name: (threads, OpenMP environment); GOMP_SPINCOUNT bounds libgomp's spinning before it sleeps (default 300,000
# spins when no policy is set; PASSIVE is 0)
VARIANTS = {"2 threads": (2, {}), "2 threads, PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
            "2 threads, spin 10k": (2, {"GOMP_SPINCOUNT": "10000"}),
            "2 threads, spin 50k": (2, {"GOMP_SPINCOUNT": "50000"}),
            "1 thread": (1, {}), "1 thread, PASSIVE": (1, {"OMP_WAIT_POLICY": "PASSIVE"})}
BASE = "2 threads"

# run in a fresh process: time per item (ms) of a few calls after a warm-up
_DETECTION = """
import glob, os, sys, time
import cv2, torch
from ultralytics import YOLO
n = int(os.environ["OMP_NUM_THREADS"])
images = [cv2.imread(p) for p in sorted(glob.glob(sys.argv[1] + "/*.jpg"))[:int(sys.argv[3])]]
model = YOLO(sys.argv[2])
model.predict(images[0], verbose=False)
torch.set_num_threads(n)  # Ultralytics resets it at its first prediction; the product sets it back the same way
t = time.perf_counter()
for im in images:
    model.predict(im, verbose=False)
print((time.perf_counter() - t) / len(images) * 1000)
"""
_ASR = """
import glob, os, sys, time
from faster_whisper import WhisperModel
n = int(os.environ["OMP_NUM_THREADS"])
clips = sorted(glob.glob(sys.argv[1] + "/*.flac"))[:int(sys.argv[3])]
model = WhisperModel(sys.argv[2], device="cpu", compute_type="int8", cpu_threads=n)
list(model.transcribe(clips[0], beam_size=1)[0])
t = time.perf_counter()
for clip in clips:
    list(model.transcribe(clip, beam_size=1)[0])
print((time.perf_counter() - t) / len(clips) * 1000)
"""


def run_one(code: str, args: list[str], threads: int, omp: dict[str, str], timeout: float) -> float | None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update({"OMP_NUM_THREADS": str(threads), "CPU_THREADS": str(threads), **omp})
    try:
        out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                             timeout=timeout, check=True)
        return round(float(out.stdout.strip().splitlines()[-1]), 1)
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        print("  failed:", type(e).__name__, str(getattr(e, "stderr", "") or e)[-300:], flush=True)
        return None


def busy(count: int) -> list[subprocess.Popen]:
    """`count` single-thread busy loops: another process's work on the same cores."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def ratios(rounds: dict[str, list], variant: str) -> dict:
    per_round = [round(b / v, 3) if v and b else None for v, b in zip(rounds[variant], rounds[BASE])]
    valid = [r for r in per_round if r is not None]
    return {"per_round": per_round, "median": round(statistics.median(valid), 3) if valid else None}


def measure(models: dict[str, tuple[str, list[str]]], rounds: int, timeout: float) -> dict:
    times = {m: {v: [] for v in VARIANTS} for m in models}
    for r in range(rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for variant in order:
            threads, omp = VARIANTS[variant]
            for name, (code, args) in models.items():
                ms = run_one(code, args, threads, omp, timeout)
                times[name][variant].append(ms)
                print(f"  round {r + 1} {name:9s} {variant:18s} {ms} ms/item  load {os.getloadavg()[0]:.1f}",
                      flush=True)
    out = {}
    for name, by_variant in times.items():
        out[name] = {"ms_per_item": by_variant,
                     "median_ms": {v: statistics.median([x for x in xs if x is not None]) if any(xs) else None
                                   for v, xs in by_variant.items()},
                     f"speed_vs_{BASE.replace(' ', '_')}": {v: ratios(by_variant, v) for v in VARIANTS if v != BASE}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--weights", type=Path, default=Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")))
    parser.add_argument("--datasets", type=Path, default=SHARED / "datasets")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="busy loops beside the model, per load")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--models", nargs="+", choices=("detection", "asr"), default=["detection", "asr"])
    args = parser.parse_args()
    models = {"detection": (_DETECTION, [str(args.datasets / "coco128" / "images" / "train2017"),
                                         str(args.weights / "yolov8n.pt"), str(args.images)]),
              "asr": (_ASR, [str(args.datasets / "speech" / "ljspeech" / "wavs"),
                             str(args.weights / "faster-whisper-tiny.en"), str(args.clips)])}
    models = {k: v for k, v in models.items() if k in args.models}
    result: dict = {"what": "ms per item (YOLOv8n one image; faster-whisper tiny.en int8 one LJSpeech clip, beam 1) "
                            "in a fresh process per variant; speed ratios > 1: faster than 2 threads, default policy",
                    "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()},
                    "variants": {k: {"threads": t, **omp} for k, (t, omp) in VARIANTS.items()},
                    "loads": {}}
    started = time.perf_counter()
    for count in args.busy:
        print(f"beside {count} busy loop(s)", flush=True)
        start_load = [round(v, 2) for v in os.getloadavg()]
        loops = busy(count)
        try:
            found = measure(models, args.rounds, args.timeout)
        finally:
            for p in loops:
                p.kill()
                p.wait()
        result["loads"][f"busy_{count}"] = {"busy_loops": count, "load_average_start": start_load,
                                            "load_average_end": [round(v, 2) for v in os.getloadavg()], **found}
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "threads.json").write_text(json.dumps(result, indent=1))
    print("wrote", args.out / "threads.json", flush=True)


if __name__ == "__main__":
    main()
