"""The coco128 reader shared by the detection tests and the bench: class names and images with their YOLO labels
as pixel boxes."""
from __future__ import annotations

from pathlib import Path

import yaml
from PIL import Image

from detection.types import LabeledObject, Sample


def coco128_names(datasets_dir: Path) -> dict[int, str]:
    return yaml.safe_load((datasets_dir / "coco128" / "coco128.yaml").read_text())["names"]


def coco128_samples(datasets_dir: Path, n: int | None = None, remap: dict[str, str] | None = None) -> list[Sample]:
    """coco128 images with their YOLO labels turned into pixel boxes (class names, optionally renamed by `remap`)."""
    root = datasets_dir / "coco128"
    names = coco128_names(datasets_dir)
    samples = []
    for img in sorted((root / "images" / "train2017").glob("*.jpg"))[:n]:
        with Image.open(img) as im:
            w, h = im.size
        objects = []
        label = root / "labels" / "train2017" / f"{img.stem}.txt"
        if label.exists():
            for line in label.read_text().splitlines():
                if not line.strip():
                    continue
                c, xc, yc, bw, bh = line.split()[:5]
                name = names[int(c)]
                name = (remap or {}).get(name, name)
                xc, yc, bw, bh = (float(v) for v in (xc, yc, bw, bh))
                objects.append(LabeledObject(name, ((xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w,
                                                    (yc + bh / 2) * h)))
        samples.append(Sample(id=img.stem, image=img, width=w, height=h, objects=objects))
    return samples
