"""How well does the ocr backend read text in images, how fast, and what do corrections teach it?

Rendered text (`ocr.synthetic`: DejaVu fonts, plain/gradient/noisy backgrounds, 4 lines an image) under five
conditions, 3 images each per seed, 3 seeds (45 images):
- upright: fonts 20-44 px, no rotation;
- rotated: lines turned by up to 40 degrees;
- small: fonts 9-13 px;
- blurred: fonts 12-20 px, Gaussian blur 1.4, lines turned by up to 8 degrees;
- low_contrast: fonts 14-30 px, the ink a quarter of the usual way from the background.
For each: line recall (a true line counts as found when a predicted outline covers it with IoU >= 0.5), CER over the
found lines, and whether the task score (the least confident line's) ranks the images with a misread or missed line
first (AUROC). Speed: seconds per image of `Reader.read` on this machine's thread budget.

Correction learning ("catalogue" images: small blurred lines holding product names and codes with easily confused
characters, e.g. "OO1l0", "Vlllage"; 3 seeds): 12 annotated images (the simulated annotator writes the true text of
each matched line) train `ocr.train.train`; CER on 8 other images of the base reader, of the served version (what
the guard publishes; base when it refuses) and of the candidate whatever the guard says, with the Brier score of
the raw and served line confidences against "read right".

With ../shared/datasets: lines found and seconds per image on the first 10 coco128 photos (no true text there).

    .venv/bin/python -m bench.ocr_bench --out bench/results     # about 5 minutes on 2 busy CPU cores

Writes `ocr.json` into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from backends.threads import apply_threads, thread_budget
from ocr.calibration import brier
from ocr.engine import Reader, get_reader
from ocr.metrics import cer, match_lines
from ocr.model import OcrModel
from ocr.synthetic import WORDS, random_text, render
from ocr.train import Pair, Sample, train

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
PER_CONDITION = 3
CONDITIONS = {"upright": {"sizes": (20, 44)}, "rotated": {"sizes": (20, 40), "max_angle": 40.0},
              "small": {"sizes": (9, 13)}, "blurred": {"sizes": (12, 20), "blur": 1.4, "max_angle": 8.0},
              "low_contrast": {"sizes": (14, 30), "contrast": 0.25}}
CATALOGUE = ["OO1l0", "Vlllage", "Kubeflow", "Quillbrook", "Zyphlexa", "Mvvarf", "rnodern", "Il0O-7", "Szczecin",
             "Hyjlqu"]
MATCH_IOU = 0.5


def read_images(reader: Reader, images: list) -> tuple[list, list[float]]:
    """Each image's lines and the seconds its read took."""
    lines, seconds = [], []
    for image, _ in images:
        t = time.perf_counter()
        lines.append(reader.read(image))
        seconds.append(time.perf_counter() - t)
    return lines, seconds


def quality(reader: Reader) -> dict:
    out: dict = {}
    all_seconds: list[float] = []
    for name, opts in CONDITIONS.items():
        refs, hyps, found, total, scores, flawed = [], [], 0, 0, [], []
        for seed in SEEDS:
            for k in range(PER_CONDITION):
                s = 1000 * seed + 10 * k + len(name)
                rng = random.Random(s)
                image = render([random_text(rng) for _ in range(4)], s, **opts)
                (lines,), seconds = read_images(reader, [image])
                all_seconds += seconds
                truth = image[1]
                pairs = match_lines([ln.points for ln in lines], [t.points for t in truth], MATCH_IOU)
                found, total = found + len(pairs), total + len(truth)
                refs += [truth[j].text for _, j in pairs]
                hyps += [lines[i].text for i, _ in pairs]
                scores.append(min((ln.confidence for ln in lines), default=1.0))
                flawed.append(len(pairs) < len(truth) or any(lines[i].text != truth[j].text for i, j in pairs))
        auroc = roc_auc_score(flawed, [-s for s in scores]) if 0 < sum(flawed) < len(flawed) else None
        out[name] = {"images": len(scores), "lines": total, "line_recall": round(found / total, 4),
                     "cer": round(cer(refs, hyps), 4), "images_with_a_flaw": int(sum(flawed)),
                     "task_score_auroc_for_flawed_images": None if auroc is None else round(float(auroc), 3)}
    out["seconds_per_image"] = {"mean": round(float(np.mean(all_seconds)), 3),
                                "median": round(float(np.median(all_seconds)), 3)}
    return out


def _catalogue_image(seed: int) -> tuple:
    rng = random.Random(seed)
    texts = [" ".join([rng.choice(CATALOGUE), rng.choice(WORDS[:30]), str(rng.randint(1, 99))]) for _ in range(5)]
    return render(texts, seed, sizes=(12, 18), blur=0.8, max_angle=6.0)


def _pairs(reader: Reader, images: list) -> list[Sample]:
    lines, _ = read_images(reader, images)
    samples = []
    for n, ((_, truth), found) in enumerate(zip(images, lines)):
        matched = match_lines([ln.points for ln in found], [t.points for t in truth], MATCH_IOU)
        samples.append(Sample(str(n), [Pair(found[i].text, found[i].confidence, truth[j].text) for i, j in matched]))
    return samples


def learning(reader: Reader, n_train: int = 12, n_test: int = 8, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    runs = []
    for seed in seeds:
        train_samples = _pairs(reader, [_catalogue_image(50_000 + 100 * seed + i) for i in range(n_train)])
        test = [p for s in _pairs(reader, [_catalogue_image(60_000 + 100 * seed + i) for i in range(n_test)])
                for p in s.pairs]
        candidate, metrics, publish, reason = train(train_samples)
        served = candidate if publish else OcrModel()
        refs = [p.reference for p in test]

        def read_by(model: OcrModel) -> list[str]:
            return [model.corrections.apply(p.recognized) if model.corrections else p.recognized for p in test]

        served_conf = [served.calibration(p.confidence) if served.calibration else p.confidence for p in test]
        right = [h.strip() == r.strip() for h, r in zip(read_by(served), refs)]
        runs.append({"seed": seed, "test_lines": len(test), "cer_base": round(cer(refs, read_by(OcrModel())), 4),
                     "cer_served": round(cer(refs, read_by(served)), 4),
                     "cer_candidate": round(cer(refs, read_by(candidate)), 4), "published": publish,
                     "reason": reason, "rules": [f"{r.wrong} -> {r.right}" for r in candidate.corrections.rules],
                     "lexicon": candidate.corrections.lexicon if candidate.corrections.use_lexicon else [],
                     "brier_raw": round(brier([p.confidence for p in test], right), 4),
                     "brier_served": round(brier(served_conf, right), 4), "train_metrics": metrics})
    mean = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in ("cer_base", "cer_served", "cer_candidate")}
    return {"train_images": n_train, "test_images": n_test, "mean": mean, "runs": runs}


def coco_photos(reader: Reader, datasets: Path, n: int = 10) -> dict | None:
    folder = datasets / "coco128" / "images" / "train2017"
    paths = sorted(folder.glob("*.jpg"))[:n] if folder.is_dir() else []
    if not paths:
        return None
    from detection.images import load_image

    lines, seconds = read_images(reader, [(load_image(p), None) for p in paths])
    return {"images": len(paths), "lines_found": sum(len(x) for x in lines),
            "images_with_text": sum(bool(x) for x in lines), "seconds_per_image": round(float(np.mean(seconds)), 3),
            "examples": [ln.text for x in lines for ln in x][:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = parser.parse_args()
    threads = apply_threads(thread_budget())
    t0 = time.time()
    reader = get_reader()
    report = {"bench": "ocr", "engine": "rapidocr (PP-OCR det/cls/rec ONNX, onnxruntime CPU)",
              "rendered": quality(reader), "correction_learning": learning(reader),
              "coco128_photos": coco_photos(reader, args.datasets), "seconds": None,
              "machine": {"cpus": os.cpu_count(), "threads": threads, "python": platform.python_version()}}
    report["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ocr.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps({k: report[k] for k in ("rendered", "seconds")}, indent=1))
    print(json.dumps(report["correction_learning"]["mean"]))


if __name__ == "__main__":
    main()
