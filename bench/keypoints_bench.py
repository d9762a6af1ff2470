"""How well does the keypoints backend learn a skeleton of its own, from how many labeled images? And what do
dlib's face landmarks cost?

Learned skeleton: synthetic figures (`bench.keypoints_shapes`: three coloured discs "red", "green", "blue" joined
by limbs, at random place, size and turn, 256x192). For N labeled images (N = 4, 8, 16 by default), the pose model
the backend trains (`keypoints.guard.train_pose` from yolov8n.pt: the detection backbone with a new keypoint head,
CPU, imgsz 160) against a plain baseline, on 30 other test images:

- pose: the trained model's most confident instance per image (conf >= 0.001);
- mean_position: every keypoint at its mean position (in image fractions) over the N training images.

Measured per test image: OKS as Ultralytics' `PoseValidator` computes it for a custom skeleton (sigma 1/K per
point, area 0.53 of the box around the points, `ultralytics.utils.metrics.kpt_iou`), and the mean point error in
pixels over the square root of that box's area; plus the trained model's validation pose mAP50-95 (the guard's
metric) on its held-out images. An image where the model finds no instance scores OKS 0.

Faces: dlib's detector and 68-point predictor (`keypoints.faces.FaceLandmarker`) on the 15 coco128 photos the demo
uses: faces found, seconds per photo.

Run by hand (about 10 minutes of CPU on 2 cores; 20 or more of wall time on a busy machine):

    .venv/bin/python -m bench.keypoints_bench --out bench/results

Writes `keypoints.json` into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ultralytics.utils.metrics import kpt_iou

from bench.keypoints_shapes import LABELS, make_samples
from detection.images import load_image
from detection.train import TrainOptions
from keypoints.faces import FaceLandmarker
from keypoints.guard import Guard, train_pose
from keypoints.model import PoseModel
from keypoints.types import Instance, PoseSample
from ops.demo_data import COCO_IMAGES, FACE_PHOTOS

AREA_SCALE = 0.53  # Ultralytics' PoseValidator: the object's area from its box


def _points(inst: Instance) -> np.ndarray:
    by_label = {p.label: (p.x, p.y) for p in inst.points}
    return np.array([[*by_label[lb], 2.0] if lb in by_label else [0.0, 0.0, 0.0] for lb in LABELS])


def score(truth: Instance, guess: np.ndarray | None) -> tuple[float, float]:
    """(OKS, mean point error / sqrt(area)) of a guess (K, 2) against the true instance; no guess: (0, nan)."""
    x1, y1, x2, y2 = truth.box(pad=0.0)
    area = max((x2 - x1) * (y2 - y1), 1.0) * AREA_SCALE
    gt = _points(truth)
    if guess is None:
        return 0.0, float("nan")
    g = np.concatenate([guess, np.ones((len(guess), 1))], axis=1)
    oks = kpt_iou(torch.tensor(gt[None]), torch.tensor(g[None]), torch.tensor([area], dtype=torch.float64),
                  [1.0 / len(LABELS)] * len(LABELS))[0, 0]
    err = np.linalg.norm(gt[:, :2] - guess, axis=1).mean() / np.sqrt(area / AREA_SCALE)
    return float(oks), float(err)


def mean_position(train: list[PoseSample]) -> np.ndarray:
    """The mean position of each keypoint over the training images, in fractions of the image."""
    return np.mean([_points(s.instances[0])[:, :2] / (s.width, s.height) for s in train], axis=0)


def summarize(rows: list[tuple[float, float]]) -> dict:
    oks = np.array([r[0] for r in rows])
    err = np.array([r[1] for r in rows])
    return {"oks": round(float(oks.mean()), 4), "oks_at_0.5": round(float((oks >= 0.5).mean()), 4),
            "normalized_error": round(float(np.nanmean(err)), 4) if np.isfinite(err).any() else None,
            "found": round(float(np.isfinite(err).mean()), 4)}


def learned_curve(work: Path, weights: Path, sizes: list[int], epochs: int, imgsz: int) -> list[dict]:
    test = make_samples(work / "test", 30, seed=99)
    arrays = [load_image(s.image) for s in test]
    out = []
    for n in sizes:
        train = make_samples(work / f"train-{n}", n, seed=n)
        t0 = time.time()
        fit = train_pose(train, LABELS, weights, True, None, work / f"model-{n}",
                         TrainOptions(epochs=epochs, imgsz=imgsz, batch=8, workers=0, patience=0), Guard())
        seconds = time.time() - t0
        model = PoseModel.load(fit.weights, LABELS)
        found = model.predict(arrays, conf=0.001, imgsz=imgsz)
        pose = [score(s.instances[0], np.array([[p.x, p.y] for p in f[0].points]) if f else None)
                for s, f in zip(test, found)]
        mean = mean_position(train)
        base = [score(s.instances[0], mean * (s.width, s.height)) for s in test]
        out.append({"labeled_images": n, "pose": summarize(pose), "mean_position": summarize(base),
                    "validation_pose_map50_95": round(fit.metrics["pose_map50_95"], 4),
                    "train_seconds": round(seconds, 1), "epochs": epochs})
        print(json.dumps(out[-1]), flush=True)
    return out


def faces() -> dict:
    landmarker = FaceLandmarker.load()
    photos = [COCO_IMAGES / f"{n}.jpg" for n in FACE_PHOTOS if (COCO_IMAGES / f"{n}.jpg").is_file()]
    arrays = [load_image(p) for p in photos]
    t0 = time.time()
    found = [landmarker.faces(a) for a in arrays]
    seconds = time.time() - t0
    return {"photos": len(photos), "photos_with_a_face": sum(bool(f) for f in found),
            "faces": sum(len(f) for f in found), "seconds_per_photo": round(seconds / max(len(photos), 1), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--sizes", default="4,8,16", help="labeled images per point of the curve")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=160)
    args = parser.parse_args(argv)
    weights = Path(os.environ.get("WEIGHTS_DIR", Path(__file__).resolve().parents[2] / "shared" / "models"))
    weights = weights / "yolov8n.pt"
    with tempfile.TemporaryDirectory() as tmp:
        curve = learned_curve(Path(tmp), weights, [int(n) for n in args.sizes.split(",")], args.epochs, args.imgsz)
    result = {"learned_skeleton": curve, "faces": faces(),
              "setup": {"test_images": 30, "image_size": [256, 192], "labels": LABELS, "imgsz": args.imgsz,
                        "start_weights": "yolov8n.pt", "cpu": platform.processor() or platform.machine(),
                        "torch_threads": torch.get_num_threads()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "keypoints.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["faces"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
