"""How well does the image_cls backend classify photos, from how many labels?

coco128 (../shared/datasets) with one label per image derived from its boxes: the class with the most box area
("class", up to 80 classes) or its COCO supercategory ("supercategory", 12). For N = 10, 20, 40, 80 random labeled
images (5 seeds; the other images are the test set), accuracy and top-5 accuracy on the test images of:

- served: what the backend serves after training on the N labels: the head (`image_cls.fit_classifier`) when its
  held-out guard publishes it, else the base predictions;
- head: the trained head whatever the guard says;
- plain_lr: scikit-learn's `LogisticRegression()` (defaults) on the same features and labels;
- base: the detector's classes found in the image (yolov8n, boxes >= 0.1), a supercategory by its best member box;
  an image where it finds nothing counts as wrong.

Active learning (supercategory labels, 3 seeds): 30 test images held out, 10 random labels, then 10 more per round
picked by a `selection` strategy (random, least_confidence, kcenter, hybrid) from the served model's probabilities
and the features, up to 80; accuracy of the served model on the test images after each round.

Features are yolov8n's pooled last neck layer (`image_cls.Embedder`, imgsz 640), cached with the detections under
bench/.cache. Run by hand (about two minutes on 2 CPU cores, seconds once cached):

    .venv/bin/python -m bench.image_cls_bench --out bench/results

Writes `image_cls.json` into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from detection.images import load_image
from detection.model import Detector
from image_cls import Embedder, NotEnoughLabels, base_scores, fit_classifier
from image_cls.classifier import correct, top_k_accuracy
from ops.sample_data import coco128_samples
from selection import Pool, get, least_confidence

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "image_cls_coco128.npz"
SIZES = (10, 20, 40, 80)
SEEDS = (0, 1, 2, 3, 4)
BASE_CONF = 0.1


def dominant(sample) -> str:
    """The class with the most box area in an image."""
    area: dict[str, float] = {}
    for o in sample.objects:
        area[o.cls] = area.get(o.cls, 0.0) + (o.xyxy[2] - o.xyxy[0]) * (o.xyxy[3] - o.xyxy[1])
    return max(area, key=area.get)


def features_and_detections(samples, weights: Path) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
    """Pooled features and (class, confidence) detections per image, cached."""
    if CACHE.exists():
        z = np.load(CACHE, allow_pickle=False)
        if list(z["ids"]) == [s.id for s in samples]:
            dets = json.loads(str(z["detections"]))
            return z["features"], [[(c, float(p)) for c, p in d] for d in dets]
    embedder, detector = Embedder.load(weights), Detector.load(weights)
    feats, dets = [], []
    for s in samples:
        image = load_image(s.image)
        feats.append(embedder.features([image])[0])
        dets.append([(d.cls, d.score) for d in detector.predict([image], conf=BASE_CONF)[0]])
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, ids=[s.id for s in samples], features=np.stack(feats), detections=json.dumps(dets))
    return np.stack(feats), dets


def label_sets(samples, datasets: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Per label kind: the image labels, and the class each detector class stands for."""
    cats = json.loads((datasets / "coco128" / "instances_train2017.json").read_text())["categories"]
    supercat = {c["name"]: c["supercategory"] for c in cats}
    by_class = [dominant(s) for s in samples]
    return {"class": (by_class, {n: n for n in supercat}),
            "supercategory": ([supercat[c] for c in by_class], supercat)}


def evaluate(proba, allowed, y) -> dict[str, float]:
    return {"accuracy": float(correct(proba, allowed, y, False).mean()),
            "top5_accuracy": top_k_accuracy(proba, allowed, y, 5)}


def run_kind(features, dets, labels: list[str], stands_for: dict[str, str]) -> dict:
    classes = sorted(set(labels))
    index = {c: j for j, c in enumerate(classes)}
    y = np.array([index[lb] for lb in labels])
    scores = base_scores([[(index[stands_for[c]], p) for c, p in d if stands_for.get(c) in index] for d in dets],
                         len(classes))
    out: dict = {"classes": len(classes), "images": len(y), "sizes": {}}
    for n in SIZES:
        rows: dict[str, list] = {"served": [], "head": [], "plain_lr": [], "base": [], "published": []}
        for seed in SEEDS:
            order = np.random.default_rng(seed).permutation(len(y))
            train, test = order[:n], order[n:]
            base = evaluate(scores[test], scores[test] > 0, y[test])
            rows["base"].append(base)
            lr = LogisticRegression().fit(features[train], y[train]) if len(set(y[train])) > 1 else None
            if lr is not None:
                p = np.zeros((len(test), len(classes)))
                p[:, lr.classes_] = lr.predict_proba(features[test])
                mask = np.zeros_like(p, dtype=bool)
                mask[:, lr.classes_] = True
                rows["plain_lr"].append(evaluate(p, mask, y[test]))
            try:
                report = fit_classifier(classes, False, features[train], scores[train], y[train],
                                        [str(i) for i in train], seed=seed)
            except NotEnoughLabels:
                rows["served"].append(base)
                rows["published"].append(False)
                continue
            clf = report.classifier
            head = evaluate(clf.proba(features[test], scores[test]), clf.allowed(scores[test]), y[test])
            rows["head"].append(head)
            rows["served"].append(head if report.publish else base)
            rows["published"].append(report.publish)
        out["sizes"][str(n)] = {
            **{k: {m: round(float(np.mean([r[m] for r in v])), 3) for m in ("accuracy", "top5_accuracy")}
               for k, v in rows.items() if k != "published" and v},
            "published": f"{sum(rows['published'])}/{len(SEEDS)}", "seeds": len(SEEDS)}
    return out


AL_STRATEGIES = ("random", "least_confidence", "kcenter", "hybrid")
AL_SEEDS, AL_TEST, AL_STEP = (0, 1, 2), 30, 10


def _encode(labels: list[str], dets, stands_for: dict[str, str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    classes = sorted(set(labels))
    index = {c: j for j, c in enumerate(classes)}
    scores = base_scores([[(index[stands_for[c]], p) for c, p in d if stands_for.get(c) in index] for d in dets],
                         len(classes))
    return classes, np.array([index[lb] for lb in labels]), scores


def _served(classes, features, scores, y, labeled, seed):
    """The served model's (probabilities, allowed) function after training on `labeled`."""
    try:
        report = fit_classifier(classes, False, features[labeled], scores[labeled], y[labeled],
                                [str(i) for i in labeled], seed=seed)
        if report.publish:
            clf = report.classifier
            return lambda idx: (clf.proba(features[idx], scores[idx]), clf.allowed(scores[idx]))
    except NotEnoughLabels:
        pass
    return lambda idx: (scores[idx], scores[idx] > 0)


def active_learning(features, dets, labels: list[str], stands_for: dict[str, str]) -> dict:
    classes, y, scores = _encode(labels, dets, stands_for)
    curves: dict[str, dict[str, list[float]]] = {name: {} for name in AL_STRATEGIES}
    for seed in AL_SEEDS:
        order = np.random.default_rng(seed).permutation(len(y))
        test, pool = order[:AL_TEST], order[AL_TEST:]
        for name in AL_STRATEGIES:
            labeled = list(pool[:AL_STEP])
            while True:
                model = _served(classes, features, scores, y, np.array(labeled), seed)
                p, allowed = model(test)
                curves[name].setdefault(str(len(labeled)), []).append(float(correct(p, allowed, y[test], False).mean()))
                if len(labeled) >= 80:
                    break
                open_ = np.array([i for i in pool if i not in set(labeled)])
                p, allowed = model(open_)
                p = np.where(allowed, p, 0.0)
                p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
                batch = get(name).order(Pool.from_probs(p, least_confidence, embeddings=features[open_],
                                                        labeled_embeddings=features[labeled],
                                                        labeled_classes=y[labeled]), AL_STEP, seed=seed)
                labeled += [int(open_[j]) for j in batch]
    return {name: {n: round(float(np.mean(v)), 3) for n, v in c.items()} for name, c in curves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--weights", type=Path,
                        default=Path(os.environ.get("WEIGHTS_DIR") or ROOT.parent / "shared" / "models") / "yolov8n.pt")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    t0 = time.time()
    samples = [s for s in coco128_samples(args.datasets) if s.objects]
    features, dets = features_and_detections(samples, args.weights)
    results = {kind: run_kind(features, dets, labels, stands_for)
               for kind, (labels, stands_for) in label_sets(samples, args.datasets).items()}
    labels, stands_for = label_sets(samples, args.datasets)["supercategory"]
    curve = active_learning(features, dets, labels, stands_for)
    report = {"bench": "image_cls", "data": "coco128, images with boxes; label = class (or supercategory) with the "
                                            "most box area", "features": "yolov8n pooled last neck layer, imgsz 640",
              "results": results, "active_learning_supercategory": curve, "seconds": round(time.time() - t0, 1),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "image_cls.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({"results": results, "active_learning_supercategory": curve}, indent=1))


if __name__ == "__main__":
    main()
