"""Synthetic keypoint data for the keypoints tests and bench: photos of one to two "figures", each a triangle of
three coloured discs joined by grey limbs, whose disc centres are the keypoints "red", "green" and "blue"."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from keypoints.types import Instance, Keypoint, PoseSample

LABELS = ["red", "green", "blue"]
COLORS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220)}


def figure(rng: np.random.Generator, width: int, height: int) -> Instance:
    """One figure's points: a random triangle, 30-60 % of the image's short side across."""
    size = rng.uniform(0.3, 0.6) * min(width, height)
    cx, cy = rng.uniform(size / 2 + 8, width - size / 2 - 8), rng.uniform(size / 2 + 8, height - size / 2 - 8)
    turn = rng.uniform(-0.6, 0.6)
    points = []
    for k, label in enumerate(LABELS):
        a = turn + np.pi / 2 + k * 2 * np.pi / 3
        r = size / 2 * rng.uniform(0.8, 1.0)
        points.append(Keypoint(label, float(cx + r * np.cos(a)), float(cy - r * np.sin(a))))
    return Instance(points)


def draw(inst: Instance, im: Image.Image) -> None:
    d = ImageDraw.Draw(im)
    xy = [(p.x, p.y) for p in inst.points]
    d.line(xy + xy[:1], fill=(120, 120, 120), width=3)
    r = max(4.0, 0.06 * min(im.size))
    for p in inst.points:
        d.ellipse((p.x - r, p.y - r, p.x + r, p.y + r), fill=COLORS[p.label])


def make_samples(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (256, 192)) -> list[PoseSample]:
    """`n` images of one figure each, written as JPEG under `folder`, with their annotations."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = size
        noise = rng.integers(200, 240, (h, w, 3), dtype=np.uint8)
        im = Image.fromarray(noise)
        inst = figure(rng, w, h)
        draw(inst, im)
        path = folder / f"fig-{seed}-{i:04d}.jpg"
        im.save(path, quality=92)
        out.append(PoseSample(f"{seed}-{i}", path, w, h, [inst]))
    return out
