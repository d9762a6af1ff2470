"""sync.py rank on a detection project, against a real Label Studio and a real detection backend process: the
images reach the backend through Label Studio's uploads; k-center ranking over the backend's /embed vectors, and
the task scores (an image of borderline boxes before a correctly empty one)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

import selection
import ultralytics
from ops.services import free_port, wait_for_port
from tests.scripts.conftest import BACKEND_PASS, BACKEND_USER

pytestmark = pytest.mark.e2e
BUS = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"  # a bus and four persons
PHOTOS = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg", "000000000036.jpg",
          "000000000042.jpg"]


@pytest.fixture(autouse=True)
def _backend_pass(monkeypatch):
    monkeypatch.setenv("SYNC_TEST_BACKEND_PASS", BACKEND_PASS)


@pytest.fixture(scope="module")
def detection_backend(label_studio, weights_dir, tmp_path_factory):
    """`python -m backends serve detection` with basic auth, reading task images from Label Studio."""
    from tests.e2e.conftest import Process

    tmp = tmp_path_factory.mktemp("detection-backend")
    port = free_port()
    env = {**os.environ, "WEIGHTS_DIR": str(weights_dir), "MODEL_DIR": str(tmp / "models"),
           "MEDIA_CACHE_DIR": str(tmp / "media"), "LABEL_STUDIO_URL": label_studio.url,
           "LABEL_STUDIO_API_KEY": label_studio.token, "BASIC_AUTH_USER": BACKEND_USER,
           "BASIC_AUTH_PASS": BACKEND_PASS, "RETRAIN_EVERY": "0", "LOG_LEVEL": "INFO"}
    env.pop("REDIS_URL", None)
    proc = Process(["serve", "detection", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "backend.log")
    try:
        wait_for_port(port, 180, proc.proc)
        proc.url = f"http://127.0.0.1:{port}"
        assert requests.get(proc.url + "/health", timeout=30).ok
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def project(label_studio, sdk, datasets_dir, detection_backend, tmp_path_factory):
    """A detection project of coco128 photos, the bus photo and a copy of it blurred until its boxes are
    borderline, and a grey image with nothing to find; set up and imported by sync.py."""
    import cv2

    from scripts.labelloop_sync.cli import main

    tmp = tmp_path_factory.mktemp("detection-project")
    folder = tmp / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(datasets_dir / "coco128/images/train2017" / name, folder / name)
    shutil.copy(BUS, folder / "bus.jpg")
    photo = np.asarray(Image.open(BUS).convert("RGB"))
    Image.fromarray(cv2.GaussianBlur(photo, (0, 0), 16)).save(folder / "blurred.png")
    Image.new("RGB", (320, 240), (128, 128, 128)).save(folder / "blank.png")
    cfg = tmp / "p.yaml"
    cfg.write_text("\n".join([
        "title: sync detection rank", "template: detection", "labels: [person, car, truck, bus, giraffe, dog]",
        "views: {most_uncertain: true, tiers: false}", "ml_backends:", f"  - url: {detection_backend.url}",
        "    title: labelloop detection",
        "    auth: {user: " + BACKEND_USER + ", password: \"${SYNC_TEST_BACKEND_PASS}\"}",
        "    interactive: false"]) + "\n")
    base = ["--url", label_studio.url, "--api-key", label_studio.token]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNC_TEST_BACKEND_PASS", BACKEND_PASS)
        assert main([*base, "setup", "--config", str(cfg)]) == 0
        assert main([*base, "import", "--config", str(cfg), str(folder)]) == 0
    pid = next(p.id for p in sdk.projects.list() if p.title == "sync detection rank")
    names = {t.data["source_name"]: t.id for t in sdk.tasks.list(project=pid)}
    assert len(names) == len(PHOTOS) + 3
    return {"id": pid, "config": str(cfg), "names": names}


def _scores(sdk, project) -> dict[str, float]:
    """The served version's score of each task, by image name."""
    out = {}
    for t in sdk.tasks.list(project=project["id"]):
        preds = [p for p in (t.predictions or []) if (p.get("model_version") if isinstance(p, dict)
                                                       else p.model_version) == "detection-base"]
        assert len(preds) == 1, f"task {t.id}: {len(preds)} predictions of detection-base"
        p = preds[0]
        out[t.data["source_name"]] = p["score"] if isinstance(p, dict) else p.score
    return out


def test_scores_put_borderline_boxes_before_a_correctly_empty_image(sync, sdk, project):
    code, out, err = sync("rank", "--config", project["config"], "--strategy", "least_confidence")
    assert code == 0, out + err
    scores = _scores(sdk, project)
    assert scores["blank.png"] == 1.0  # nothing to find, and nothing found: confidently empty
    assert scores["blurred.png"] < 0.5 and scores["blurred.png"] < scores["bus.jpg"]
    assert all(0 <= s <= 1 for s in scores.values())


def test_rank_kcenter_works_on_a_detection_project(sync, sdk, project):
    assert sync("rank", "--config", project["config"], "--strategy", "least_confidence")[0] == 0
    plain = _scores(sdk, project)
    code, out, err = sync("rank", "--config", project["config"], "--strategy", "kcenter", "--batch", "3")
    assert code == 0, out + err
    scores = _scores(sdk, project)
    ranked = sorted(scores.values())
    # the batch on top in pick order (0, 1e-6, 2e-6), every other task a confidence behind it
    assert ranked[:3] == pytest.approx([i * selection.BATCH_STEP for i in range(3)], abs=1e-9)
    assert ranked[3] >= 3 * selection.BATCH_STEP - 1e-9
    top = sorted(scores, key=scores.get)[:3]
    assert top[0] == min(plain, key=plain.get), (top, plain)  # nothing picked yet: the least confident first
    assert len(set(top)) == 3
