"""The demo's data: taken from ../shared/datasets when it is there, generated otherwise.

- questions (text_cls): the TREC test questions, else the committed examples/demo_questions.jsonl;
- sentences (ner): CoNLL-2003 dev sentences, else the committed examples/demo_sentences.jsonl;
- photos (detection, segmentation): COCO128 images, else drawn shapes (PIL), just so the projects exist;
- speech (asr): LJSpeech clips, else sentences spoken by espeak-ng;
- text images (ocr): signs and receipts rendered with the DejaVu fonts (ocr.synthetic), some turned, one blank.

Media go into a folder per kind under the demo's data folder, holding exactly the files to import (the import
skips files Label Studio already has, by their SHA-256, so generated files are made once and kept).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DATASETS = SHARED / "datasets"
TREC_FILE = DATASETS / "text" / "trec" / "TREC_10.label"
COCO_IMAGES = DATASETS / "coco128" / "images" / "train2017"
LJSPEECH = DATASETS / "speech" / "ljspeech"
FALLBACK_QUESTIONS = ROOT / "examples" / "demo_questions.jsonl"
CONLL_FILE = DATASETS / "text" / "conll2003" / "dev.txt"
FALLBACK_SENTENCES = ROOT / "examples" / "demo_sentences.jsonl"


class DemoDataError(RuntimeError):
    """Neither the shared data set nor a way to generate the data is there."""


def _detokenize(text: str) -> str:
    """TREC questions are tokenized ("Who was Galileo ?"): make them read normally."""
    for a, b in ((" ?", "?"), (" ,", ","), (" 's", "'s"), (" n't", "n't"), ("`` ", '"'), (" ''", '"'),
                 (" .", "."), (" :", ":"), (" ;", ";"), ("( ", "("), (" )", ")")):
        text = text.replace(a, b)
    return text.strip()


def read_trec(path: str | Path) -> tuple[list[str], list[str]]:
    """Questions and coarse labels from a TREC file (`COARSE:fine question`, latin-1)."""
    texts, labels = [], []
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        if line.strip():
            label, question = line.split(" ", 1)
            texts.append(question.strip())
            labels.append(label.split(":")[0])
    return texts, labels


def questions(limit: int) -> tuple[list[dict], str]:
    """Up to `limit` tasks {"text": ...}: TREC test questions when shared/ is there, else the committed file."""
    if TREC_FILE.is_file():
        texts, _ = read_trec(TREC_FILE)
        return [{"text": _detokenize(q)} for q in texts if q][:limit], str(TREC_FILE)
    tasks = [json.loads(line) for line in FALLBACK_QUESTIONS.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    return [{"text": t["text"]} for t in tasks[:limit]], str(FALLBACK_QUESTIONS)


def sentences(limit: int) -> tuple[list[dict], str]:
    """Up to `limit` tasks {"text": ...}: CoNLL-2003 dev sentences of 6+ words when shared/ is there, else the
    committed file."""
    if CONLL_FILE.is_file():
        from ner.conll import read

        texts = [t for t in (_detokenize(t) for t, _ in read(CONLL_FILE, limit=20 * limit)) if len(t.split()) >= 6]
        return [{"text": t} for t in texts[:limit]], str(CONLL_FILE)
    tasks = [json.loads(line) for line in FALLBACK_SENTENCES.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    return [{"text": t["text"]} for t in tasks[:limit]], str(FALLBACK_SENTENCES)


def _fill(folder: Path, makers: dict) -> None:
    """Make `folder` hold exactly the files named in `makers`: others are removed, missing ones are made by
    makers[name](path), written under a temporary name first so an interrupted run leaves no half file."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if p.name not in makers:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    for name, make in makers.items():
        target = folder / name
        if not target.exists():
            tmp = folder / (".tmp-" + name)
            make(tmp)
            os.replace(tmp, target)


def _copy(src: Path):
    return lambda tmp: shutil.copyfile(src, tmp)


def _draw_image(i: int, path: Path) -> None:
    from PIL import Image, ImageDraw

    rng = random.Random(i)
    img = Image.new("RGB", (640, 480), tuple(rng.randrange(80, 220) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 4)):
        x, y = rng.randrange(0, 480), rng.randrange(0, 320)
        w, h = rng.randrange(60, 160), rng.randrange(60, 160)
        color = tuple(rng.randrange(0, 256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=color, outline=(0, 0, 0))
    img.save(path, format="JPEG", quality=90)


def images(folder: Path, limit: int) -> str:
    """Fill `folder` with `limit` photos; returns where they came from."""
    coco = sorted(COCO_IMAGES.glob("*.jpg")) if COCO_IMAGES.is_dir() else []
    if coco:
        _fill(folder, {p.name: _copy(p) for p in coco[:limit]})
        return str(COCO_IMAGES)
    _fill(folder, {f"shapes-{i:03d}.jpg": (lambda tmp, i=i: _draw_image(i, tmp)) for i in range(limit)})
    return "generated (drawn shapes; COCO128 is not in ../shared/datasets)"


# the coco128 photos in which dlib's frontal face detector finds a face (margin >= 0.5), for the keypoints demo
FACE_PHOTOS = ("000000000036", "000000000110", "000000000113", "000000000165", "000000000241", "000000000294",
               "000000000308", "000000000326", "000000000389", "000000000428", "000000000436", "000000000459",
               "000000000529", "000000000536", "000000000564")


def faces(folder: Path, limit: int) -> str:
    """Fill `folder` with up to `limit` photos with faces; returns where they came from."""
    found = [COCO_IMAGES / f"{name}.jpg" for name in FACE_PHOTOS if (COCO_IMAGES / f"{name}.jpg").is_file()]
    if not found:
        return images(folder, limit) + ", no faces in them"
    _fill(folder, {p.name: _copy(p) for p in found[:limit]})
    return f"{COCO_IMAGES} (the {len(found[:limit])} photos with faces)"


def _text_image(i: int, path: Path) -> None:
    from ocr.synthetic import random_text, render, save

    rng = random.Random(1000 + i)
    texts = [] if i == 0 else [random_text(rng) for _ in range(rng.randint(2, 5))]  # the first is blank
    image, _ = render(texts, seed=1000 + i, width=800, height=500, max_angle=20 if i % 3 == 0 else 4)
    save(image, path)


def text_images(folder: Path, limit: int) -> str:
    """Fill `folder` with `limit` rendered text images (the first without text); returns where they came from."""
    _fill(folder, {f"text-{i:03d}.png": (lambda tmp, i=i: _text_image(i, tmp)) for i in range(limit)})
    return "generated (lines rendered with the DejaVu fonts, ocr.synthetic)"


def _speak(text: str, path: Path) -> None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DemoDataError("no LJSpeech clips in ../shared/datasets and espeak-ng is not installed "
                            "(ops/setup.sh installs it) to generate speech")
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(path), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def clips(folder: Path, limit: int) -> str:
    """Fill `folder` with `limit` speech clips; returns where they came from."""
    lj = sorted(LJSPEECH.rglob("*.flac")) if LJSPEECH.is_dir() else []
    if lj:
        _fill(folder, {p.name: _copy(p) for p in lj[:limit]})
        return str(LJSPEECH)
    sentences = [t["text"] for t in questions(limit)[0]]
    _fill(folder, {f"spoken-{i:03d}.wav": (lambda tmp, s=s: _speak(s, tmp)) for i, s in enumerate(sentences)})
    return "generated (espeak-ng; LJSpeech is not in ../shared/datasets)"
