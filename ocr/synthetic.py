"""Rendered text images with their true lines, for tests, the bench and the demo: DejaVu fonts (Pillow) in varied
sizes, colours, backgrounds and rotations; each line's outline is known exactly, so recall and CER can be measured
without hand labels."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
         "DejaVuSansCondensed.ttf", "DejaVuSerif-Italic.ttf")
WORDS = ("invoice total amount due order number customer service opening hours monday friday street avenue "
         "station platform exit entrance parking only emergency coffee fresh bread market price sale today open "
         "closed welcome hotel room floor north south east west delivery address phone email account balance "
         "receipt payment method card cash change quantity item description weight").split()


class FontMissing(RuntimeError):
    """The DejaVu fonts (fonts-dejavu-core) are not installed."""


def font_path(name: str) -> Path:
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FontMissing(f"{name} not found in {', '.join(map(str, FONT_DIRS))}; install fonts-dejavu-core")


@dataclass
class TrueLine:
    """A rendered line: its outline in pixels (top-left, top-right, bottom-right, bottom-left of the text as
    written) and its text."""

    points: np.ndarray
    text: str


def random_text(rng: random.Random, vocabulary: tuple[str, ...] | list[str] = WORDS) -> str:
    """2 to 5 words, sometimes capitalised, sometimes with a number or a price."""
    words = [rng.choice(vocabulary) for _ in range(rng.randint(2, 5))]
    if rng.random() < 0.3:
        words[0] = words[0].capitalize()
    if rng.random() < 0.2:
        words = [w.upper() for w in words]
    if rng.random() < 0.3:
        words.append(rng.choice([str(rng.randint(1, 9999)), f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}",
                                 f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(10, 29)}"]))
    return " ".join(words)


def _background(rng: random.Random, width: int, height: int) -> tuple[Image.Image, float]:
    """A plain, gradient or noisy background and its mean brightness."""
    base = np.array([rng.randrange(0, 256) for _ in range(3)], dtype=np.float64)
    kind = rng.choice(["plain", "gradient", "noise"])
    img = np.ones((height, width, 3)) * base
    if kind == "gradient":
        other = np.array([rng.randrange(0, 256) for _ in range(3)], dtype=np.float64)
        t = np.linspace(0, 1, width)[None, :, None]
        img = base * (1 - t) + other * t * np.ones((height, 1, 1))
        img = np.clip(img * 0.5 + base * 0.5, 0, 255)
    elif kind == "noise":
        img = img + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 18, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return Image.fromarray(img), float(img.mean())


def _corners(w: float, h: float, pad: float, size: tuple[int, int], new: tuple[int, int], angle: float) -> np.ndarray:
    """Where the text box [pad, pad, pad + w, pad + h] of a layer of `size` lands after Pillow's
    `rotate(angle, expand=True)` (counter-clockwise on screen about the centre) gave a layer of `new`."""
    box = np.array([[pad, pad], [pad + w, pad], [pad + w, pad + h], [pad, pad + h]]) - np.array(size) / 2
    a = math.radians(angle)
    turn = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # y down: counter-clockwise
    return box @ turn.T + np.array(new) / 2


def render(texts: list[str], seed: int, width: int = 640, height: int = 480, max_angle: float = 0.0,
           sizes: tuple[int, int] = (20, 44), blur: float = 0.0,
           contrast: float = 1.0) -> tuple[np.ndarray, list[TrueLine]]:
    """An (H, W, 3) uint8 RGB image with `texts` written on it, one line each where they fit without overlap,
    and the lines that were written.

    Args:
        seed: decides fonts, colours, background, placement and angles.
        max_angle: each line turns by up to this many degrees either way.
        sizes: the range of font sizes in pixels.
        blur: a Gaussian blur radius applied to the whole image (a soft camera).
        contrast: 1 writes dark ink on light ground (or light on dark); less brings the ink towards the ground.
    """
    rng = random.Random(seed)
    img, brightness = _background(rng, width, height)
    taken: list[tuple[float, float, float, float]] = []
    lines = []
    for text in texts:
        font = ImageFont.truetype(str(font_path(rng.choice(FONTS))), rng.randint(*sizes))
        left, top, right, bottom = font.getbbox(text)
        w, h, pad = right - left, bottom - top, 4
        layer = Image.new("RGBA", (w + 2 * pad, h + 2 * pad), (0, 0, 0, 0))
        ink = tuple(round(brightness + contrast * ((rng.randrange(0, 70) if brightness > 128 else
                                                    rng.randrange(190, 256)) - brightness)) for _ in range(3))
        ImageDraw.Draw(layer).text((pad - left, pad - top), text, font=font, fill=(*ink, 255))
        angle = rng.uniform(-max_angle, max_angle) if max_angle else 0.0
        turned = layer.rotate(angle, expand=True, resample=Image.BICUBIC)
        corners = _corners(w, h, pad, layer.size, turned.size, angle)
        for _ in range(30):  # a free place for the line's bounding box, else the line is left out
            x, y = rng.randrange(0, max(1, width - turned.width)), rng.randrange(0, max(1, height - turned.height))
            box = (x, y, x + turned.width, y + turned.height)
            if box[2] <= width and box[3] <= height and not any(
                    box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
                taken.append(box)
                img.paste(turned, (x, y), turned)
                lines.append(TrueLine(corners + np.array([x, y]), text))
                break
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img.convert("RGB")), lines


def save(image: np.ndarray, path: str | Path) -> None:
    Image.fromarray(image).save(path)
