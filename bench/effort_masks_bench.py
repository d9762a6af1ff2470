"""Effort bench for masks (by hand, not CI): how much of an annotator's time the segmentation backend's automatic
masks (yolov8n-seg, as `detection.model.Detector` serves them) save on coco128's COCO instance masks, by score
threshold.

    .venv/bin/python -m bench.effort_masks_bench --out bench/results        # about 2 min on 2 CPU cores

The model runs once over the 128 images at a floor of 0.05; the simulated annotator (`bench/effort.py`, `MaskCosts`)
then, at each threshold, keeps a shown mask of the right class with IoU >= keep_iou (a check), redoes one on an
object that is not good enough, deletes one where nothing is, and traces every object no mask claimed; against
tracing every object (COCO's 79.2 s a polygon). Saving = 1 - the ratio of the summed times. Spread over random halves
(--splits): the threshold chosen on one half and the saving it gives on the other, against the backends' default
threshold. Variants: a cheaper fix (20 s, assumed smart-tool clicks) and keep_iou 0.5 / 0.85. Crowd regions are left
out (neither truth nor penalised). The baseline is tracing everything: no smart-tool clicks are simulated, as there
are no SAM weights here to click with.

Writes effort_masks.json into --out.
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before detection / ultralytics are imported
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from backends.regions_writers import DEFAULT_THRESHOLD  # noqa: E402
from bench.effort import MASK_COSTS, mask_iou, masks_by_iou, total  # noqa: E402
from detection.model import Detector  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)
FLOOR = 0.05
VARIANTS = {"cited": MASK_COSTS, "fix 20 s (smart-tool clicks, assumed)": replace(MASK_COSTS, fix=20.0),
            "keep_iou 0.5": replace(MASK_COSTS, keep_iou=0.5), "keep_iou 0.85": replace(MASK_COSTS, keep_iou=0.85)}

# per image: the automatic masks (class, score), the true classes, and their IoU (computed once)
Image_ = tuple[list[tuple[str, float]], list[str], np.ndarray]


def ground_truth(coco_json: Path) -> dict[str, tuple[int, int, list[tuple[str, np.ndarray]]]]:
    """file name -> (height, width, [(class, mask)]) of the non-crowd instances."""
    from pycocotools.coco import COCO

    coco = COCO(str(coco_json))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    out = {}
    for img in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"], iscrowd=False))
        out[img["file_name"]] = (img["height"], img["width"],
                                 [(names[a["category_id"]], coco.annToMask(a).astype(bool)) for a in anns])
    return out


def predicted_masks(detector: Detector, image: np.ndarray) -> list[tuple[str, float, np.ndarray]]:
    """The automatic masks of one image >= FLOOR: (class, score, mask rasterised from the served polygon)."""
    out = []
    for d in detector.predict([image], conf=FLOOR)[0]:
        mask = np.zeros(image.shape[:2], np.uint8)
        if d.polygon is not None and len(d.polygon) >= 3:
            cv2.fillPoly(mask, [np.round(d.polygon).astype(np.int32)], 1)
        out.append((d.cls, d.score, mask.astype(bool)))
    return out


def saving(images: list[Image_], threshold: float, costs=MASK_COSTS) -> float:
    return total([masks_by_iou(p, t, iou, threshold, costs) for p, t, iou in images]).saved


def halves(images: list[Image_], splits: int, costs) -> dict:
    """Threshold chosen on a random half, its saving on the other half, against the default's there."""
    chosen, held, default = [], [], []
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(images))
        a, b = [images[i] for i in order[::2]], [images[i] for i in order[1::2]]
        best = max(THRESHOLDS, key=lambda t: (saving(a, t, costs), -t))
        chosen.append(best)
        held.append(saving(b, best, costs))
        default.append(saving(b, DEFAULT_THRESHOLD, costs))
    return {"chosen_thresholds": chosen, "held_out_saving_mean": round(float(np.mean(held)), 4),
            "held_out_saving_std": round(float(np.std(held)), 4),
            "default_saving_mean": round(float(np.mean(default)), 4),
            "default_saving_std": round(float(np.std(default)), 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")) / "yolov8n-seg.pt")
    parser.add_argument("--coco128", type=Path, default=SHARED / "datasets" / "coco128")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = ground_truth(args.coco128 / "instances_train2017.json")
    detector = Detector.load(args.weights, task="segment")
    images: list[Image_] = []
    for name, (h, w, objects) in sorted(truth.items()):
        rgb = np.asarray(Image.open(args.coco128 / "images" / "train2017" / name).convert("RGB"))
        if rgb.shape[:2] != (h, w):  # annotations are of the stored pixels; skip an image shown otherwise
            continue
        pred = predicted_masks(detector, rgb)
        images.append(([(c, score) for c, score, _ in pred], [c for c, _ in objects],
                       mask_iou([m for _, _, m in pred], [m for _, m in objects])))
    predict_s = time.perf_counter() - started
    result: dict = {"weights": args.weights.name, "images": len(images),
                    "objects": sum(len(t) for _, t, _ in images), "floor": FLOOR, "default_threshold": DEFAULT_THRESHOLD,
                    "baseline": "tracing every object (no pre-annotation)", "predict_s": round(predict_s, 1),
                    "variants": {}}
    for label, costs in VARIANTS.items():
        curve = {str(t): round(saving(images, t, costs), 4) for t in THRESHOLDS}
        result["variants"][label] = {"costs": asdict(costs), "saving_by_threshold": curve,
                                     "best_threshold": float(max(curve, key=lambda t: (curve[t], -float(t)))),
                                     **halves(images, args.splits, costs)}
        print(label, curve, flush=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "effort_masks.json").write_text(json.dumps(result, indent=1))
    print("wrote", args.out / "effort_masks.json", flush=True)


if __name__ == "__main__":
    main()
