"""The box loop, simulated without retraining (YOLO training on 2 CPU cores is too slow for a bench): the annotator
takes the images in batches, in the order of the task score ("Most uncertain first") or at random, and corrects the
pre-annotations shown at a threshold; per batch, the seconds against drawing every box (`bench/effort.py`).

Used by `python -m bench.loop_bench --task detection` (coco128, yolov8n.pt) and by `--export` on a project's own
labeled images (`bench/loop_export.py`).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.effort import boxes, total
from detection.threshold import THRESHOLDS, Image, choose_threshold

ORDERS = ("task score (least confident first)", "random")


def box_loop(images: Sequence[Image], task_scores: Sequence[float], threshold: float, batch: int,
             seeds: int) -> dict:
    """Cumulative seconds, batch by batch, for each order, at `threshold`.

    Args:
        images: per image, its detections (down to a floor at or below every threshold asked about) and truths.
        task_scores: per image, the confidence the backend writes (low: uncertain, labeled first).
        threshold: the score from which boxes are shown.
        batch: images per round; seeds: random orders averaged.
    """
    efforts = [boxes(d, t, threshold) for d, t in images]
    ranked = np.argsort(np.asarray(task_scores, dtype=float), kind="stable")
    orders = {ORDERS[0]: [ranked]}
    orders[ORDERS[1]] = [np.random.default_rng(s).permutation(len(images)) for s in range(seeds)]
    out = {}
    for name, perms in orders.items():
        saving, first = [], []
        for perm in perms:
            sizes = list(range(batch, len(images), batch)) + [len(images)]
            per_round = [total([efforts[i] for i in perm[:n]]) for n in sizes]
            saving.append([e.saved for e in per_round])
            first.append(total([efforts[i] for i in perm[:batch]]))
        s = np.array(saving)
        out[name] = {"images": sizes, "cumulative_saving_mean": s.mean(axis=0).round(4).tolist(),
                     "cumulative_saving_std": s.std(axis=0).round(4).tolist(),
                     "first_batch_seconds": round(float(np.mean([e.assisted for e in first])), 1),
                     "first_batch_scratch_seconds": round(float(np.mean([e.scratch for e in first])), 1),
                     "first_batch_saving": round(float(np.mean([e.saved for e in first])), 4)}
    return out


def threshold_report(images: Sequence[Image], thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """The threshold that minimises annotation time over the images, and the saving at each threshold."""
    choice = choose_threshold(images, thresholds)
    return {"best": choice.threshold, "saving_at_best": round(choice.saving(), 4),
            "thresholds": list(choice.thresholds),
            "saving": [round(choice.saving(t), 4) for t in choice.thresholds],
            "images": choice.images, "objects": choice.objects}


def main(args) -> int:
    """coco128 through yolov8n.pt at the backend's default threshold: ranked against random order."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from backends.regions_writers import DEFAULT_THRESHOLD
    from bench.effort_bench import detect
    from bench.loop_bench import SHARED
    from detection.scoring import FLOOR, image_confidence
    from ops.sample_data import coco128_samples

    weights = Path(os.environ.get("WEIGHTS_DIR") or SHARED / "models") / "yolov8n.pt"
    samples = coco128_samples(SHARED / "datasets")
    start = time.perf_counter()
    dets, probs = detect(weights, samples, FLOOR)
    images = [(d, s.boxes) for d, s in zip(dets, samples)]
    scores = [image_confidence([x.score for x in d], DEFAULT_THRESHOLD, p) for d, p in zip(dets, probs)]
    result = {"model": weights.name, "images": len(images), "threshold": DEFAULT_THRESHOLD, "batch": args.batch,
              "random_seeds": args.seeds, "retrained": False,
              "orders": box_loop(images, scores, DEFAULT_THRESHOLD, args.batch, args.seeds),
              "threshold_choice": threshold_report(images), "elapsed_s": round(time.perf_counter() - start)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop_detection.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "loop_detection.png")
    print(format_report(result))
    return 0


def format_report(result: dict) -> str:
    choice = result["threshold_choice"]
    lines = [f"best threshold {choice['best']} (saving {choice['saving_at_best']:.3f} of the drawing time over "
             f"{choice['images']} images)"]
    for name, o in result["orders"].items():
        lines.append(f"  {name:38s} first batch saves {o['first_batch_saving']:+.3f} "
                     f"({o['first_batch_seconds']:.0f}s vs {o['first_batch_scratch_seconds']:.0f}s drawing); "
                     f"all images {o['cumulative_saving_mean'][-1]:+.3f}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, o in result["orders"].items():
        m, sd = np.array(o["cumulative_saving_mean"]), np.array(o["cumulative_saving_std"])
        axes[0].plot(o["images"], m, marker=".", label=name)
        axes[0].fill_between(o["images"], m - sd, m + sd, alpha=0.15)
    axes[0].set(title=f"saving so far at threshold {result.get('threshold')}", xlabel="images labeled",
                ylabel="1 - seconds / drawing seconds")
    axes[0].legend(fontsize=7)
    t = result["threshold_choice"]
    axes[1].plot(t["thresholds"], t["saving"], marker=".")
    axes[1].axvline(t["best"], color="grey", lw=0.5)
    axes[1].set(title="saving over all images by threshold", xlabel="model_score_threshold", ylabel="saving")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
