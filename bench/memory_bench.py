"""Cold start and memory of each backend process: `python -m backends serve NAME` until /health says the model is
ready, then one /predict of a real task, then the process's resident memory (now and at its peak).

    python -m bench.memory_bench [--backends text_cls detection segmentation asr] [--runs 3]

Writes bench/results/memory.json. The runs alternate between backends, and the load average at the start and the
end is recorded: cold start is a time on a shared machine, read it as such.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from ops.services import free_port

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BUS = None  # set in main: Ultralytics' bundled photo
CONFIGS = {
    "text_cls": ('<View><Text name="text" value="$text"/><Choices name="c" toName="text">'
                 '<Choice value="Sports"/><Choice value="Politics"/></Choices></View>', "text",
                 "Who won the match yesterday?"),
    "detection": ('<View><Image name="image" value="$image"/><RectangleLabels name="b" toName="image">'
                  '<Label value="Person"/><Label value="Bus"/></RectangleLabels></View>', "image", None),
    "segmentation": ('<View><Image name="image" value="$image"/><BrushLabels name="m" toName="image">'
                     '<Label value="Person"/><Label value="Bus"/></BrushLabels></View>', "image", None),
    "asr": ('<View><Audio name="audio" value="$audio"/><TextArea name="t" toName="audio"/></View>', "audio", None),
    "ner": ('<View><Labels name="l" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>'
            '<Text name="text" value="$text"/></View>', "text", "Angela Merkel met the board of Siemens in Paris."),
    "image_cls": ('<View><Image name="image" value="$image"/><Choices name="c" toName="image">'
                  '<Choice value="Person"/><Choice value="Bus"/></Choices></View>', "image", None),
    "ocr": ('<View><Image name="image" value="$image"/><Rectangle name="r" toName="image"/>'
            '<TextArea name="t" toName="image" perRegion="true"/></View>', "image", None),
    "keypoints": ('<View><Image name="image" value="$image"/><KeyPointLabels name="k" toName="image">'
                  '<Label value="nose_tip"/><Label value="left_eye"/></KeyPointLabels></View>', "image", None),
}


def _memory(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mib": round(fields["VmRSS"], 1), "peak_rss_mib": round(fields["VmHWM"], 1)}


def _value(name: str, key: str, text: str | None) -> str:
    if text is not None:
        return text
    if key == "image":
        return str(BUS)
    clips = sorted((SHARED / "datasets/speech/ljspeech/wavs").glob("*.flac"))
    if not clips:
        raise SystemExit("no LJSpeech clip in ../shared/datasets/speech/ljspeech")
    return str(clips[0])


def measure(name: str, env: dict[str, str], tmp: Path) -> dict:
    config, key, text = CONFIGS[name]
    value = _value(name, key, text)
    port = free_port()
    log = open(tmp / f"{name}-{port}.log", "wb")
    env = {**env, "MODEL_DIR": str(tmp / "models"), "MEDIA_CACHE_DIR": str(tmp / "media"),
           "LOCAL_FILES_ROOTS": str(Path(value).parent) if key != "text" else ""}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "backends", "serve", name, "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: see {log.name}")
            try:
                body = requests.get(url + "/health", timeout=5).json()
                if body.get("model") == "ready":
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        ready = time.monotonic() - start
        after_load = _memory(proc.pid)
        t0 = time.monotonic()
        r = requests.post(url + "/predict", timeout=600, json={
            "tasks": [{"id": 1, "data": {key: value}}], "label_config": config, "project": "1.1"})
        r.raise_for_status()
        first = time.monotonic() - t0
        return {"backend": name, "cold_start_s": round(ready, 2), "first_predict_s": round(first, 2),
                "after_load": after_load, "after_predict": _memory(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main(argv: list[str] | None = None) -> int:
    global BUS
    import tempfile

    import ultralytics

    BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=list(CONFIGS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/memory.json")
    args = parser.parse_args(argv)
    env = {**os.environ, "WEIGHTS_DIR": os.environ.get("WEIGHTS_DIR", str(SHARED / "models")), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1", "LOG_LEVEL": "WARNING"}
    load_start = os.getloadavg()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name in args.backends:  # alternate, so a burst of load spreads over all of them
                runs.append({"run": i, **measure(name, env, Path(tmp))})
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for name in args.backends:
        mine = [r for r in runs if r["backend"] == name]
        summary[name] = {k: {"min": min(v), "median": sorted(v)[len(v) // 2], "max": max(v)} for k, v in {
            "cold_start_s": [r["cold_start_s"] for r in mine],
            "first_predict_s": [r["first_predict_s"] for r in mine],
            "rss_after_predict_mib": [r["after_predict"]["rss_mib"] for r in mine],
            "peak_rss_mib": [r["after_predict"]["peak_rss_mib"] for r in mine]}.items()}
    args.out.write_text(json.dumps({
        "what": "one backend process (python -m backends serve): seconds until /health says ready, the first "
                "/predict of one real task, resident memory after it (MiB)",
        "cpus": len(os.sched_getaffinity(0)), "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "summary": summary, "runs": runs}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
