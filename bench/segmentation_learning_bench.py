"""Segmentation learning benchmark (by hand, not CI): does fine-tuning YOLO-seg on a project's own masks beat the
base model for a class of the project's own?

The class is "Vehicle" (COCO's car, bus, truck and motorcycle as one class, as a project would define it). The base
model serves it the best way it can: all four COCO classes mapped onto the label (predicted_values). The fine-tuned
model learns it as a new class from N labeled coco128 images showing vehicles (their COCO polygons, only the
vehicles; everything else is background), started from yolov8n-seg.pt the way the segmentation backend trains
(`detection.guard.training_classes`, `extend_classes`, `build_dataset`, `finetune`). Both are scored by mask mAP
(`detection.guard.mask_metrics`: Ultralytics' matching on the objects' pixels) and, from the same detections, box
mAP (`detection.evaluate.evaluate`) on the same held-out third of coco128 (every third image by file name); N = 5,
10, 14 images drawn from the vehicle images of the other two thirds (14 is all of them), 3 seeds each (`--sizes`,
`--seeds` for a shorter run). Training and scoring run at `--imgsz` 320 (lean, as on a CPU); the base model is
also scored at 640, its own size. Each run records the optimiser steps it made, its best epoch and Ultralytics' own
validation on the dataset's validation split (1-3 of the N images).

    .venv/bin/python -m bench.segmentation_learning_bench --out bench/results
    .venv/bin/python -m bench.segmentation_learning_bench --sizes 14 --seeds 0     # one run

Slow on a CPU: one run takes 4-18 min on 2 cores shared with other work. The JSON is rewritten after every run
(`complete` says whether all ran). coco128 has only 14 vehicle images outside the held-out third (25 vehicles held
out in 43 images).

Why the first measurement was mask mAP50 0.001 (N=10, batch 1, 10 epochs at 320): box mAP50 of the same model was
0.001 too (0.015 on its own training images), so the class was not learned at all, the mask path was not at fault.
Ultralytics accumulates gradients up to a nominal batch of 64 images (`nbs`), ramped up during warm-up: 10 images
gave a handful of optimiser updates in the whole run, most at the warm-up's near-zero rate, and the fresh Vehicle
row of the head stayed near its initialisation. `detection.train` now steps once per batch (`nbs` = batch;
tests/detection/test_train_steps.py: 12 updates where the default made 1). The labels were checked: the written
polygons match the COCO outlines to 0.0003 px, one class index 0, normalised by the image size. With the fix
(seed 0, batch 2, 10 epochs at 320; bench/results/segmentation_learning.json) held-out mask mAP50 0.0009, 0.0093
and 0.055 for N = 5, 10, 14 (box mAP50 0.001, 0.010, 0.056: masks follow boxes), against 0.115 for the mapped base
model at 320 and 0.40 at 640. The best epoch is picked by Ultralytics on the 1-4 validation images of the N: at
N=5 (one validation image) it kept epoch 1, after 2 of the run's 20 updates. A diagnostic run with N=14, 5 epochs:
0.064 held out, 0.255 box / 0.247 mask on its own training images. At 640 px (N=14, same options;
bench/results/segmentation_learning_640.json) 0.059 mask, 0.096 box against the base model's 0.40 / 0.44: the small
size is not why. Where COCO classes cover the label, mapping
them (predicted_values) is still better than a new class learned from a dozen images; the guard keeps such a
candidate out. The fine-tuned model pays off for classes no
COCO class covers (tests/backends/test_segmentation_training.py: a synthetic Widget from 11 images). Runs of this
bench after the fix: bench/results/segmentation_learning.json.

Writes segmentation_learning.json into --out. CPU only (CUDA is hidden).
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before detection / ultralytics are imported
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))

from detection.classes import extend_classes  # noqa: E402
from detection.dataset import build_dataset  # noqa: E402
from detection.evaluate import PREDICT_CONF, evaluate  # noqa: E402
from detection.geometry import polygon_area  # noqa: E402
from detection.guard import mask_metrics  # noqa: E402
from detection.images import load_image  # noqa: E402
from detection.model import Detector  # noqa: E402
from detection.predict import Plan, run_plans  # noqa: E402
from detection.train import TrainOptions, finetune  # noqa: E402
from detection.types import Detection, LabeledObject, Sample  # noqa: E402

LABEL = "Vehicle"
VEHICLES = ("car", "bus", "truck", "motorcycle")
SIZES = (5, 10, 14)
SEEDS = (0, 1, 2)
IMGSZ = 320
OPTIONS = dict(epochs=10, imgsz=IMGSZ, batch=2, patience=0, freeze=10, seed=0)


def coco128_vehicles(datasets_dir: Path) -> list[Sample]:
    """Every coco128 image with its vehicles as `LabeledObject`s of class Vehicle: the box and the largest polygon
    of each COCO instance (crowd regions left out)."""
    from pycocotools.coco import COCO

    coco = COCO(str(datasets_dir / "coco128" / "instances_train2017.json"))
    wanted = set(coco.getCatIds(catNms=list(VEHICLES)))
    samples = []
    for img_id in sorted(coco.getImgIds(), key=lambda i: coco.loadImgs(i)[0]["file_name"]):
        info = coco.loadImgs(img_id)[0]
        objects = []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False)):
            if ann["category_id"] not in wanted or not isinstance(ann["segmentation"], list):
                continue
            polygon = max((np.array(p, dtype=float).reshape(-1, 2) for p in ann["segmentation"] if len(p) >= 6),
                          key=lambda p: abs(polygon_area(p)), default=None)
            if polygon is None:
                continue
            x, y, w, h = ann["bbox"]
            objects.append(LabeledObject(LABEL, (x, y, x + w, y + h), polygon))
        path = datasets_dir / "coco128" / "images" / "train2017" / info["file_name"]
        samples.append(Sample(id=Path(info["file_name"]).stem, image=path, width=info["width"],
                              height=info["height"], objects=objects))
    return samples


def predictions(plans: list[Plan], arrays: list[np.ndarray], imgsz: int = IMGSZ) -> list[list]:
    """Per image, the plans' detections renamed to the class they stand for (conf 0.001, as mAP needs)."""
    out = []
    for dets in run_plans(plans, arrays, imgsz, 8, conf=PREDICT_CONF):
        found = [] if isinstance(dets, Exception) else dets
        out.append([Detection(cls, d.score, d.xyxy, d.polygon) for cls, d in found])
    return out


def scored(found: list[list], held: list[Sample]) -> dict:
    """Mask mAP and, from the same detections, box mAP: both near 0 means the class was not learned, a box mAP
    well above the mask mAP would point at the masks."""
    m = mask_metrics(found, held, [LABEL])
    b = evaluate(found, [s.boxes for s in held], [LABEL])
    return {"mask_map50": round(m["mask_map50"], 4), "mask_map50_95": round(m["mask_map50_95"], 4),
            "box_map50": round(b["map50"], 4), "box_map50_95": round(b["map50_95"], 4)}


def run(weights_dir: Path, datasets_dir: Path, sizes: list[int], seeds: list[int], save) -> dict:
    """Score the base model, then each (size, seed) run; `save(result)` after each, so a stopped run keeps what it
    measured."""
    samples = coco128_vehicles(datasets_dir)
    held = samples[::3]
    pool = [s for k, s in enumerate(samples) if k % 3 and s.objects]
    arrays = [load_image(s.image, 10**8) for s in held]
    start_weights = weights_dir / "yolov8n-seg.pt"
    imgsz = OPTIONS["imgsz"]
    base = Detector.load(start_weights, "segment")
    base_plan = Plan(base, {c: LABEL for c in base.names if c in VEHICLES}, PREDICT_CONF)
    # the base model at the size the candidates are trained and scored at, and at its own (640)
    result = {"base": scored(predictions([base_plan], arrays, imgsz), held),
              "base_imgsz640": scored(predictions([base_plan], arrays, 640), held), "runs": []}
    print("base", result["base"], result["base_imgsz640"], flush=True)
    for n in sizes:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            chosen = [pool[i] for i in sorted(rng.choice(len(pool), min(n, len(pool)), replace=False))]
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                first = extend_classes(start_weights, [LABEL], work / "start.pt")
                data = build_dataset(chosen, [LABEL], work / "dataset", task="segment", val_fraction=0.2)
                t0 = time.time()
                report = finetune(first, data.data_yaml, work / "out", TrainOptions(**OPTIONS, device="cpu"),
                                  "segment")
                seconds = time.time() - t0
                tuned = Detector.load(report.weights, "segment")
                row = {"n_images": len(chosen), "seed": seed, "objects": sum(len(s.objects) for s in chosen),
                       "train_images": len(data.train_ids), "val_images": len(data.val_ids),
                       "train_seconds": round(seconds, 1), "optimizer_steps": report.optimizer_steps,
                       "best_epoch": report.best_epoch,
                       "ultralytics_val": {k.split("/")[1]: round(v, 4) for k, v in report.metrics.items()
                                           if k.startswith("metrics/mAP")},
                       **scored(predictions([Plan(tuned, {LABEL: LABEL}, PREDICT_CONF)], arrays, imgsz), held)}
                shutil.rmtree(work / "dataset", ignore_errors=True)
            result["runs"].append(row)
            print(row, flush=True)
            save(result)
    result["summary"] = {}
    for n in sorted({r["n_images"] for r in result["runs"]}):
        rows = [r for r in result["runs"] if r["n_images"] == n]
        result["summary"][str(n)] = {k: {"mean": round(float(np.mean([r[k] for r in rows])), 4),
                                         "std": round(float(np.std([r[k] for r in rows])), 4)}
                                     for k in ("mask_map50", "mask_map50_95", "box_map50", "box_map50_95")}
    result["held_out"] = {"images": len(held), "objects": sum(len(s.objects) for s in held)}
    result["pool"] = {"vehicle_images": len(pool)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--weights", type=Path, default=Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")))
    parser.add_argument("--datasets", type=Path, default=SHARED / "datasets")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--epochs", type=int, default=OPTIONS["epochs"])
    parser.add_argument("--batch", type=int, default=OPTIONS["batch"])
    parser.add_argument("--imgsz", type=int, default=OPTIONS["imgsz"], help="training and scoring size")
    args = parser.parse_args()
    OPTIONS.update(epochs=args.epochs, batch=args.batch, imgsz=args.imgsz)
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)

    def save(result: dict, complete: bool = False) -> None:
        result.update(label=LABEL, coco_classes=list(VEHICLES), sizes=args.sizes, seeds=args.seeds,
                      options=OPTIONS, machine={"cpus": os.cpu_count(), "python": platform.python_version()},
                      seconds=round(time.time() - t0, 1), complete=complete)
        (args.out / "segmentation_learning.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    result = run(args.weights, args.datasets, args.sizes, args.seeds, save)
    save(result, complete=True)
    print(json.dumps(result["summary"], indent=1), "base", result["base"])


if __name__ == "__main__":
    main()
