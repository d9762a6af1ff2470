"""A served backend keeps the one thread budget it was given, through its first YOLO prediction, and OpenMP's
bounded spinning."""
from __future__ import annotations

import os
from pathlib import Path

import requests
import ultralytics

BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
          '<Label value="Person"/><Label value="Bus"/></RectangleLabels></View>')


def test_detection_keeps_cpu_threads_after_predicting(start_backend):
    cores = len(os.sched_getaffinity(0))
    wanted = min(8, max(1, cores - 1)) + 1  # anything but what Ultralytics would set, so that a reset shows
    backend = start_backend("detection", CPU_THREADS=str(wanted), LOCAL_FILES_ROOTS=str(BUS.parent))
    policy = os.environ.get("OMP_WAIT_POLICY") or None
    spin = os.environ.get("GOMP_SPINCOUNT") or (None if policy else "50000")
    threads = {"budget": wanted, "torch": wanted, "gomp_spincount": spin, "omp_wait_policy": policy}
    assert requests.get(backend.url + "/health", timeout=10).json()["threads"] == threads
    r = requests.post(backend.url + "/predict", json={"tasks": [{"id": 1, "data": {"image": str(BUS)}}],
                                                      "label_config": CONFIG, "project": "1.1"}, timeout=120)
    assert r.status_code == 200 and r.json()["results"][0]["result"], r.text
    assert requests.get(backend.url + "/health", timeout=10).json()["threads"] == threads
