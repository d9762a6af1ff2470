"""The labeled data sets in ../shared/datasets as the tests and the benchmarks read them, so both measure on the
same data: TREC questions with descriptions of their classes, SST-2 sentences, and coco128 images with their boxes
in pixels.

(The demo's own data, with fallbacks when ../shared is missing, is `ops/demo_data.py`.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from detection.images import image_size
from detection.types import LabeledObject, Sample
from ops.demo_data import read_trec

__all__ = ["TREC_DESCRIPTIONS", "coco128_names", "coco128_samples", "read_sst2", "read_trec"]

# Short descriptions of the TREC-6 coarse classes, as a user would type them in a labeling config.
TREC_DESCRIPTIONS = {
    "ABBR": ["abbreviation", "acronym", "what does an abbreviation stand for"],
    "DESC": ["description", "definition", "what is the meaning of something", "why and how something happens"],
    "ENTY": ["entity", "thing", "animal", "food", "color", "product", "sport", "object"],
    "HUM": ["person", "who is someone", "group of people", "organization"],
    "LOC": ["location", "place", "city", "country", "where is something"],
    "NUM": ["number", "how many", "date", "when", "how much", "quantity", "year"],
}


def read_sst2(datasets_dir: Path, split: str) -> tuple[list[str], np.ndarray]:
    """SST-2's `split` ("train", "dev", "test") from `datasets_dir`/text/sst2: (sentences, 0/1 labels)."""
    rows = [line.rsplit("\t", 1) for line in
            (datasets_dir / "text" / "sst2" / f"sentiment-{split}").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [r[0].strip() for r in rows], np.array([int(r[1]) for r in rows])


def coco128_names(datasets_dir: Path) -> dict[int, str]:
    """coco128's 80 class names by class index, from `datasets_dir`/coco128/coco128.yaml."""
    return yaml.safe_load((datasets_dir / "coco128" / "coco128.yaml").read_text(encoding="utf-8"))["names"]


def coco128_samples(datasets_dir: Path, n: int | None = None, remap: dict[str, str] | None = None) -> list[Sample]:
    """The first `n` (default: all) coco128 images, in file name order, with their YOLO labels as pixel boxes.

    Args:
        datasets_dir: the folder holding coco128/ (images/train2017, labels/train2017, coco128.yaml).
        n: how many images.
        remap: class names to rename ({"car": "Vehicle"}); others keep coco128's name.
    """
    root = datasets_dir / "coco128"
    names = coco128_names(datasets_dir)
    samples = []
    for img in sorted((root / "images" / "train2017").glob("*.jpg"))[:n]:
        w, h = image_size(img)  # as displayed (EXIF orientation), which is what YOLO labels are relative to
        objects = []
        label = root / "labels" / "train2017" / f"{img.stem}.txt"
        for line in label.read_text().splitlines() if label.exists() else []:
            if not line.strip():
                continue
            c, xc, yc, bw, bh = line.split()[:5]
            name = names[int(c)]
            name = (remap or {}).get(name, name)
            xc, yc, bw, bh = float(xc) * w, float(yc) * h, float(bw) * w, float(bh) * h
            objects.append(LabeledObject(name, (xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2)))
        samples.append(Sample(id=img.stem, image=img, width=w, height=h, objects=objects))
    return samples
