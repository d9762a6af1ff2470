"""Effort bench for boxes (by hand, not CI): how much of an annotator's time yolov8n's pre-annotations save on
coco128, as a function of the score threshold, and how well the task score ranks the images it gets wrong.

    .venv/bin/python -m bench.effort_bench --out bench/results        # about 2 min on 2 CPU cores

1. The model runs once over all 128 images at a low floor (0.01), keeping every candidate's 80 class probabilities
   (`detection.class_probs.ClassProbsPredictor`).
2. effort: the simulated annotator (`bench/effort.py`, times in `detection.effort.BoxCosts`) at each threshold
   0.05..0.90: seconds with the pre-annotation against drawing every box; saving = 1 - the ratio of the summed
   times. Spread over random halves (--splits): the threshold chosen on one half (`detection.threshold`) and the
   saving it gives on the other (held out), against the backend's former default 0.5. Sensitivity of the best
   threshold to the assumed fix and delete times, and to a slower drawer (Su et al. 2012).
3. score: Spearman correlation, over images, of the task score with the F1 of the pre-annotation at the chosen
   threshold: the former score (mean score of the shown boxes, 0 for an image with none) against
   `detection.scoring.image_confidence` for each uncertainty measure, with and without class probabilities, at
   several floors; spread over the same halves.

Writes effort_detection.json and effort_detection.png into --out. CPU only.
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

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))

from bench.effort import boxes, total  # noqa: E402
from ops.sample_data import coco128_samples  # noqa: E402
from detection.class_probs import ClassProbsPredictor  # noqa: E402
from detection.effort import BOX_COSTS, f1  # noqa: E402
from detection.scoring import FLOOR, image_confidence  # noqa: E402
from detection.threshold import THRESHOLDS, choose_threshold, outcome_at  # noqa: E402
from detection.types import Detection  # noqa: E402
from selection import entropy, least_confidence, margin  # noqa: E402

FORMER_DEFAULT = 0.5  # the backend's model_score_threshold before this bench
# the cited costs, each assumed one moved, and a traditional (slow) drawer: the default threshold should not hang on
# the two assumed times
COST_VARIANTS = {"cited": BOX_COSTS, "fix 2.0 s": replace(BOX_COSTS, fix=2.0), "fix 4.0 s": replace(BOX_COSTS, fix=4.0),
                 "delete 0.5 s": replace(BOX_COSTS, delete=0.5), "delete 2.0 s": replace(BOX_COSTS, delete=2.0),
                 "verify 2.5 s": replace(BOX_COSTS, verify=2.5),
                 "draw 25.5 s (Su et al. 2012)": replace(BOX_COSTS, draw=25.5)}
MEASURES = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}
FLOORS = (0.01, 0.05, 0.1)


def detect(weights: Path, samples: list, floor: float) -> tuple[list[list[Detection]], list[np.ndarray]]:
    """Every candidate >= floor per image, highest score first, with its class probabilities (n, 80)
    (`detection.class_probs`), one image per call as the backend serves a task."""
    from ultralytics import YOLO

    yolo = YOLO(str(weights))
    dets, probs = [], []
    for s in samples:
        r = yolo.predict(str(s.image), predictor=ClassProbsPredictor, conf=floor, iou=0.7, max_det=300,
                         verbose=False)[0]
        xyxy = r.boxes.xyxy.cpu().numpy().astype(float)
        conf = r.boxes.conf.cpu().numpy().astype(float)
        cls = r.boxes.cls.cpu().numpy().astype(int)
        order = np.argsort(-conf, kind="stable")
        dets.append([Detection(yolo.names[int(cls[i])], float(conf[i]), tuple(xyxy[i])) for i in order])
        probs.append(np.asarray(r.feats)[order])
    return dets, probs


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def former_score(dets: list[Detection], threshold: float) -> float:
    """The task score the detection backend served before `detection.scoring`: the mean score of the boxes shown,
    0 for an image with none."""
    shown = [d.score for d in dets if d.score >= threshold]
    return sum(shown) / len(shown) if shown else 0.0


def effort_part(images: list, splits: int, seed: int) -> dict:
    per_image = [[boxes(d, tr, t) for t in THRESHOLDS] for d, tr in images]  # the simulated annotator
    curve = np.array([[e.assisted for e in row] for row in per_image])  # (images, thresholds) seconds
    scratch = np.array([row[0].scratch for row in per_image])
    full = choose_threshold(images)
    rng = np.random.default_rng(seed)
    held_out, per_split_curves = [], []
    for _ in range(splits):
        order = rng.permutation(len(images))
        a, b = order[: len(order) // 2], order[len(order) // 2:]
        t_a = THRESHOLDS[int(np.argmin(curve[a].sum(axis=0)))]
        saving_b = 1.0 - curve[b].sum(axis=0) / scratch[b].sum()
        per_split_curves.append(saving_b)
        held_out.append({"chosen_on_a": t_a, "saving_b_at_chosen": float(saving_b[THRESHOLDS.index(t_a)]),
                         "saving_b_at_0.5": float(saving_b[THRESHOLDS.index(FORMER_DEFAULT)]),
                         "best_on_b": THRESHOLDS[int(np.argmax(saving_b))],
                         "saving_b_at_best_on_b": float(saving_b.max())})
    curves = np.array(per_split_curves)
    sensitivity, regrets = {}, []
    for name, costs in COST_VARIANTS.items():
        c = choose_threshold(images, costs=costs)
        curve_v = np.array([c.saving(t) for t in THRESHOLDS])
        regrets.append(curve_v.max() - curve_v)
        sensitivity[name] = {"best": c.threshold, "saving_at_best": round(c.saving(), 4),
                             "saving_at_0.5": round(c.saving(FORMER_DEFAULT), 4),
                             "saving": [round(float(v), 4) for v in curve_v]}
    worst = np.max(regrets, axis=0)  # per threshold, the most saving lost to the best of any cost variant
    outcomes = {str(t): asdict(sum((outcome_at(d, tr, t) for d, tr in images), start=_zero())) for t in THRESHOLDS}
    chosen = [h["chosen_on_a"] for h in held_out]
    return {
        "costs_s": asdict(BOX_COSTS), "thresholds": list(THRESHOLDS), "images": len(images),
        "objects": int(sum(len(t) for _, t in images)), "scratch_s": float(scratch.sum()),
        "saving_all_images": [round(full.saving(t), 4) for t in THRESHOLDS],
        "best_all_images": full.threshold, "saving_at_best_all_images": round(full.saving(), 4),
        "saving_at_0.5_all_images": round(full.saving(FORMER_DEFAULT), 4),
        "outcomes_all_images": outcomes,
        "seconds_all_images": {str(t): asdict(total([row[k] for row in per_image]))
                               for k, t in enumerate(THRESHOLDS)},
        "held_out": {
            "splits": splits, "seed": seed,
            "saving_b_mean": [round(float(v), 4) for v in curves.mean(axis=0)],
            "saving_b_std": [round(float(v), 4) for v in curves.std(axis=0)],
            "chosen_thresholds": {str(t): chosen.count(t) for t in sorted(set(chosen))},
            "saving_b_at_chosen_mean": round(float(np.mean([h["saving_b_at_chosen"] for h in held_out])), 4),
            "saving_b_at_chosen_std": round(float(np.std([h["saving_b_at_chosen"] for h in held_out])), 4),
            "saving_b_at_0.5_mean": round(float(np.mean([h["saving_b_at_0.5"] for h in held_out])), 4),
            "saving_b_at_0.5_std": round(float(np.std([h["saving_b_at_0.5"] for h in held_out])), 4),
            "saving_b_at_best_on_b_mean": round(float(np.mean([h["saving_b_at_best_on_b"] for h in held_out])), 4),
            "per_split": held_out,
        },
        "cost_sensitivity": sensitivity,
        "learned_from_first_images": learning_curve(curve, scratch, splits, seed),
        "worst_regret": [round(float(v), 4) for v in worst],
        "robust_threshold": THRESHOLDS[int(np.argmin(worst))],
    }


def learning_curve(curve: np.ndarray, scratch: np.ndarray, splits: int, seed: int,
                   sizes: tuple[int, ...] = (2, 4, 8, 16, 32, 64)) -> dict:
    """A project learning its threshold from its first n annotated images (`detection.threshold` on them): the
    saving that threshold gives on the images left, against the former default 0.5 and the threshold that is best
    on all images (the new default, so a slightly optimistic reference: it has seen the images left)."""
    rng = np.random.default_rng(seed + 1)
    tuned = int(np.argmin(curve.sum(axis=0)))
    out = {}
    for n in sizes:
        rows = []
        for _ in range(splits):
            order = rng.permutation(len(curve))
            a, b = order[:n], order[n:]
            t = int(np.argmin(curve[a].sum(axis=0)))
            saving_b = 1.0 - curve[b].sum(axis=0) / scratch[b].sum()
            rows.append((scratch[a].sum() / BOX_COSTS.draw, saving_b[t], saving_b[THRESHOLDS.index(FORMER_DEFAULT)],
                         saving_b[tuned], THRESHOLDS[t]))
        objects, got, former, at_tuned, chosen = (np.array(c) for c in zip(*rows))
        out[str(n)] = {"objects_mean": round(float(objects.mean()), 1),
                       "saving_rest_mean": round(float(got.mean()), 4), "saving_rest_std": round(float(got.std()), 4),
                       "saving_rest_worst": round(float(got.min()), 4),
                       "saving_rest_at_0.5_mean": round(float(former.mean()), 4),
                       f"saving_rest_at_{THRESHOLDS[tuned]}_mean": round(float(at_tuned.mean()), 4),
                       "chosen_mean": round(float(chosen.mean()), 3), "chosen_max": float(chosen.max())}
    return out


def _zero():
    from detection.effort import BoxOutcome

    return BoxOutcome()


def score_part(images: list, probs: list[np.ndarray], threshold: float, splits: int, seed: int) -> dict:
    """Spearman of each score with the per-image F1 of the pre-annotation at `threshold`, on all images and over
    random halves."""
    f1s = np.array([f1(outcome_at(d, t, threshold)) for d, t in images])
    scores: dict[str, np.ndarray] = {
        f"former (mean shown score) at {threshold}": np.array([former_score(d, threshold) for d, _ in images]),
    }
    for floor in FLOORS:
        scores[f"expected F1, floor {floor}"] = np.array([
            image_confidence([x.score for x in d], threshold, floor=floor) for d, _ in images])
        for name, measure in MEASURES.items():
            scores[f"expected F1, floor {floor}, class probs, {name}"] = np.array([
                image_confidence([x.score for x in d], threshold, p, measure, floor)
                for (d, _), p in zip(images, probs)])
    rng = np.random.default_rng(seed)
    halves = [rng.permutation(len(images))[: len(images) // 2] for _ in range(splits)]
    out = {}
    for key, s in scores.items():
        per_half = [spearman(s[h], f1s[h]) for h in halves]
        out[key] = {"spearman_all": round(spearman(s, f1s), 4),
                    "spearman_halves_mean": round(float(np.mean(per_half)), 4),
                    "spearman_halves_std": round(float(np.std(per_half)), 4)}
    f1_former = np.array([f1(outcome_at(d, t, FORMER_DEFAULT)) for d, t in images])
    return {"threshold": threshold, "f1_mean": round(float(f1s.mean()), 4),
            "former_score_vs_f1_at_0.5": round(spearman([former_score(d, FORMER_DEFAULT) for d, _ in images],
                                                        f1_former), 4),
            "expected_f1_vs_f1_at_0.5": round(spearman(
                [image_confidence([x.score for x in d], FORMER_DEFAULT) for d, _ in images], f1_former), 4),
            "empty_images_truth": int(sum(1 for _, t in images if not t)), "scores": out}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e, s = result["effort"], result["score"]
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.8))
    ax = axes[0]
    t = np.array(e["thresholds"])
    mean, std = np.array(e["held_out"]["saving_b_mean"]), np.array(e["held_out"]["saving_b_std"])
    ax.plot(t, e["saving_all_images"], "o-", label=f"all {e['images']} images")
    ax.plot(t, mean, "s--", label=f"random halves (mean ± std, {e['held_out']['splits']} splits)")
    ax.fill_between(t, mean - std, mean + std, alpha=0.2)
    ax.axvline(FORMER_DEFAULT, color="grey", ls=":", label="former default 0.5")
    ax.axvline(e["best_all_images"], color="green", ls=":", label=f"best {e['best_all_images']}")
    ax.set_xlabel("model_score_threshold")
    ax.set_ylabel("annotation time saved vs drawing every box")
    ax.set_title("yolov8n pre-annotations on coco128")
    ax.legend(fontsize=8)
    ax = axes[1]
    keys = [k for k in s["scores"] if k.startswith("former") or f"floor {result['chosen_floor']}," in k + ","]
    vals = [s["scores"][k]["spearman_halves_mean"] for k in keys]
    errs = [s["scores"][k]["spearman_halves_std"] for k in keys]
    ax.barh(range(len(keys)), vals, xerr=errs, color=["grey" if k.startswith("former") else "C0" for k in keys])
    ax.set_yticks(range(len(keys)), keys, fontsize=7)
    ax.axvline(0.6, color="red", ls=":", label="aim 0.6")
    ax.set_xlabel(f"Spearman(score, per-image F1 at {s['threshold']}), halves mean ± std")
    ax.set_title("task score vs pre-annotation quality")
    ax.legend(fontsize=8)
    ax = axes[2]
    learned = e["learned_from_first_images"]
    n = [int(k) for k in learned]
    ax.errorbar(n, [v["saving_rest_mean"] for v in learned.values()], [v["saving_rest_std"] for v in learned.values()],
                marker="o", capsize=3, label="threshold learned from the first n images")
    ax.plot(n, [v["saving_rest_at_0.5_mean"] for v in learned.values()], "s:", color="grey", label="former default 0.5")
    best_key = next(k for k in next(iter(learned.values())) if k.startswith("saving_rest_at_0.") and "0.5" not in k)
    ax.plot(n, [v[best_key] for v in learned.values()], "^:", color="green",
            label=f"best on all images ({best_key.split('_')[3]})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("annotated images the threshold is learned from")
    ax.set_ylabel("time saved on the other images")
    ax.set_title("a project learning its own threshold")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")) / "yolov8n.pt")
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "coco128")
    parser.add_argument("--floor", type=float, default=0.01, help="the lowest score the model is asked for")
    parser.add_argument("--splits", type=int, default=50, help="random halves for the spread")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    samples = coco128_samples(args.data.parent)
    dets, probs = detect(args.weights, samples, args.floor)
    images = [(d, s.boxes) for d, s in zip(dets, samples)]
    detect_s = time.perf_counter() - started
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "weights": args.weights.name,
                    "data": str(args.data), "detect_floor": args.floor, "detect_s": round(detect_s, 1)}
    result["effort"] = effort_part(images, args.splits, args.seed)
    result["score"] = score_part(images, probs, result["effort"]["best_all_images"], args.splits, args.seed)
    result["chosen_floor"] = FLOOR
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    result["notes"] = NOTES
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "effort_detection.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(result, args.out / "effort_detection.png")
    print(json.dumps({k: result["effort"][k] for k in ("best_all_images", "saving_at_best_all_images",
                                                      "saving_at_0.5_all_images")}))
    print(json.dumps({k: v for k, v in result["effort"]["held_out"].items() if k != "per_split"}))
    for k, v in result["score"]["scores"].items():
        print(f"{v['spearman_all']:+.3f} {v['spearman_halves_mean']:+.3f}±{v['spearman_halves_std']:.3f}  {k}")
    print(f"wrote {args.out / 'effort_detection.json'} ({result['total_wall_s']} s)")


NOTES = [
    "Annotation times per box action are detection.effort.BoxCosts (draw 7.0 s, verify 1.6 s, fix 3.0 s, "
    "delete 1.0 s; sources and assumptions in its docstring). Matching: a shown box of the right class at IoU >= 0.5 "
    "is verified, one at IoU 0.1..0.5 (or of the wrong class) is fixed, the rest deleted; a true box nobody "
    "matched is drawn. Savings are 1 - summed assisted time / summed scratch time.",
    "All 80 COCO classes are labels (a project asking for fewer classes sees fewer false boxes). Images: all "
    "coco128 (128 images, 929 boxes), the same images the COCO-trained yolov8n was trained on: its boxes are "
    "better here than on a project's own images, so savings are an upper bound for this model.",
    "The per-image F1 counts only boxes kept as they are as right; an image with nothing predicted and nothing to "
    "find has F1 1.",
    "Scores: a higher score must mean a better pre-annotation, so a good score has a positive Spearman with F1.",
    "learned_from_first_images: detection.threshold picks the threshold on n random images, the saving is measured "
    "on the other 128 - n (splits repeats); it sets detection.threshold.MIN_OBJECTS. On coco128 the best threshold "
    "of all images is also the reference, so learning can only come close to it here; it pays on a project whose "
    "model or images differ from COCO's.",
]


if __name__ == "__main__":
    main()
