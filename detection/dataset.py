"""Annotated samples -> an Ultralytics YOLO dataset folder (images, label files, data.yaml).

Layout written by `build_dataset`::

    out_dir/
      data.yaml                      # absolute `path`, `train: images/train`, `val: images/val`, `names: {i: name}`
      images/{train,val}/<stem><ext> # symlinks to the original files (copies where symlinks fail)
      labels/{train,val}/<stem>.txt  # YOLO label lines, coordinates normalised to [0, 1]

Ultralytics finds a label file by replacing the last ``/images/`` of an image path with ``/labels/`` and the
suffix with ``.txt``; it writes ``labels/<split>.cache`` next to them, so ``out_dir`` must be writable (never point
training at a read-only shared dataset).

Each `Sample` lists its objects (`LabeledObject`: class, box and, when outlined, polygon) once, so a label line is
written per object without having to pair boxes with outlines.

The train/validation split depends only on each sample's id (`split`), so a project that grows keeps every old
sample on the side it was on. `build_dataset` returns the ids it actually put on each side (`YoloDataset`): only
samples with a readable image take part, so callers should use those rather than split all their samples again.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .geometry import yolo_box_line, yolo_polygon_line
from .types import Sample

log = logging.getLogger(__name__)

# What Ultralytics reads as images (ultralytics.data.utils.IMG_FORMATS), compared on the lower-cased suffix.
IMG_SUFFIXES = frozenset({"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff",
                          "webp"})
# PIL format name -> suffix, for image files stored without a usable suffix (e.g. uploads named by hash).
_PIL_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tiff", "WEBP": ".webp", "MPO": ".jpg"}
TASKS = ("detect", "segment")


def _unit_hash(sample_id: str) -> float:
    """sha1 of the id as a number in [0, 1)."""
    digest = hashlib.sha1(str(sample_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split(ids: list[str], val_fraction: float = 0.2) -> tuple[list[str], list[str]]:
    """Split ids into (train, val) by a sha1 hash of each id.

    An id goes to validation when its hash, read as a number in [0, 1), is below `val_fraction`; the choice does
    not depend on the order of `ids` nor on the other ids, so adding samples never moves an old one.

    With two or more distinct ids both sides get at least one: when the hash puts none in validation, the id with
    the lowest hash moves there (when it puts all there, the highest-hash id moves to train). For tiny sets this
    minimum can therefore move an id when others are added (e.g. with 3 ids the only validation id may return to
    train once a new id hashes below `val_fraction`). A single id goes to train. Duplicated ids stay together.

    Args:
        ids: sample ids (task ids).
        val_fraction: expected share of validation ids, in [0, 1].

    Returns:
        (train ids, val ids), each in the order of `ids`.
    """
    if not 0.0 <= float(val_fraction) <= 1.0:
        raise ValueError(f"val_fraction must be within [0, 1], got {val_fraction!r}")
    h = {i: _unit_hash(i) for i in ids}
    val_set = {i for i, v in h.items() if v < val_fraction}
    if len(h) >= 2:
        if not val_set:
            val_set = {min(h, key=lambda i: (h[i], str(i)))}
        elif len(val_set) == len(h):
            val_set.discard(max(h, key=lambda i: (h[i], str(i))))
    train = [i for i in ids if i not in val_set]
    val = [i for i in ids if i in val_set]
    return train, val


def safe_stem(sample_id: str) -> str:
    """A file name stem for a sample id: the id itself when it is a plain name, else a cleaned id + a short hash."""
    sid = str(sample_id)
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", sid).strip("._") or "sample"
    if cleaned == sid and len(sid) <= 100:
        return sid
    return f"{cleaned[:80]}-{hashlib.sha1(sid.encode('utf-8')).hexdigest()[:10]}"


def _image_suffix(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix[1:] in IMG_SUFFIXES:
        return suffix
    try:  # no usable suffix: ask PIL what the file is
        from PIL import Image

        with Image.open(path) as im:
            return _PIL_SUFFIX.get(im.format or "")
    except Exception:
        return None


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def label_lines(sample: Sample, class_index: dict[str, int], task: str = "detect",
                skipped: Counter | None = None) -> list[str]:
    """YOLO label lines for one sample: one line per object of `sample.objects`, in their order.

    - "detect": one ``c xc yc w h`` line per object, from its box (`xyxy`).
    - "segment": one ``c x1 y1 x2 y2 ...`` polygon line per object, from its outline when it has one with at least
      3 points, else from the 4 corners of its box.

    Coordinates are normalised by the sample's width/height and clipped to the image; zero-area objects are
    dropped. Classes missing from `class_index` are counted in `skipped` (by name) and dropped.

    Raises:
        ValueError: `task` is unknown, or the sample has objects but no image size.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not sample.objects:
        return []
    w, h = int(sample.width), int(sample.height)
    if w <= 0 or h <= 0:
        raise ValueError(f"sample {sample.id!r} has objects but no image size ({sample.width}x{sample.height})")
    lines: list[str] = []
    for obj in sample.objects:
        c = class_index.get(obj.cls)
        if c is None:
            if skipped is not None:
                skipped[obj.cls] += 1
            continue
        if task == "detect":
            line = yolo_box_line(c, obj.xyxy, w, h)
        elif obj.polygon is not None and len(np.asarray(obj.polygon).reshape(-1, 2)) >= 3:
            line = yolo_polygon_line(c, obj.polygon, w, h)
        else:
            x1, y1, x2, y2 = (float(v) for v in obj.xyxy)
            line = yolo_polygon_line(c, [(x1, y1), (x2, y1), (x2, y2), (x1, y2)], w, h)
        if line:
            lines.append(line)
    return lines


@dataclass(frozen=True)
class YoloDataset:
    """What `build_dataset` wrote.

    Attributes:
        data_yaml: out_dir/data.yaml, the path to train on (`detection.train.finetune`).
        train_ids: ids of the samples written under images/train, in the order of the samples.
        val_ids: ids of the samples written under images/val, in the order of the samples. Both hold only usable
            samples (skipped ones are in neither); when a single sample is usable, its id is in both.
    """

    data_yaml: Path
    train_ids: list[str]
    val_ids: list[str]


def _checked(samples: Sequence[Sample], class_names: list[str]) -> tuple[list[str], list[str]]:
    """The class names as strings and each sample's file stem, once both are checked for duplicates."""
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {sorted(n for n, k in Counter(names).items() if k > 1)}")
    ids = [str(s.id) for s in samples]
    dup = sorted(i for i, k in Counter(ids).items() if k > 1)
    if dup:
        raise ValueError(f"duplicate sample ids: {dup[:10]}")
    stems = [safe_stem(i) for i in ids]
    if len(set(stems)) != len(stems):
        raise ValueError("sample ids collide once made into file names")
    return names, stems


def _fresh_folders(out_dir: Path) -> None:
    """Empty images/{train,val} and labels/{train,val} under `out_dir` (a link or file in their place removed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "labels"):
        if (out_dir / sub).is_symlink() or (out_dir / sub).is_file():
            (out_dir / sub).unlink()
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    for part in ("train", "val"):
        (out_dir / "images" / part).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / part).mkdir(parents=True, exist_ok=True)


def build_dataset(samples: Sequence[Sample], class_names: list[str], out_dir: Path, task: str = "detect",
                  val_fraction: float = 0.2) -> YoloDataset:
    """Write an Ultralytics dataset for `samples` under `out_dir`.

    The split comes from `split` over the ids of the usable samples. Samples with no (known) objects stay as
    background images with an empty label file. Samples whose image is missing or of an unknown format, or that
    have objects but no size, are skipped with a warning. When there is a single usable sample it is used for both
    train and val (Ultralytics needs a non-empty val folder), and its id is in both `train_ids` and `val_ids`.
    Existing ``images/``, ``labels/`` and ``data.yaml`` under `out_dir` are replaced.

    Args:
        samples: annotated images (pixel coordinates of the image as annotated).
        class_names: the model's classes, in index order; objects of other classes are skipped (logged, counted).
        out_dir: folder to write; created when missing.
        task: "detect" (box lines) or "segment" (polygon lines; box-only objects become 4-corner polygons).
        val_fraction: see `split`.

    Returns:
        A `YoloDataset`: the path of out_dir/data.yaml and the ids written into each part. Use its `val_ids` to
        find the validation samples rather than calling `split` again: skipped samples change the split's input.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    names, stems = _checked(samples, class_names)
    out_dir = Path(out_dir).absolute()
    _fresh_folders(out_dir)
    class_index = {n: i for i, n in enumerate(names)}
    usable: list[tuple[Sample, str, str]] = []  # sample, stem, suffix
    missing = 0
    skipped: Counter = Counter()
    lines_of: dict[str, list[str]] = {}
    for s, stem in zip(samples, stems):
        src = Path(s.image)
        suffix = _image_suffix(src) if src.is_file() else None
        if suffix is None:
            missing += 1
            log.warning("sample %r: image %s is missing or not a readable image; skipped", s.id, src)
            continue
        try:
            lines_of[str(s.id)] = label_lines(s, class_index, task, skipped)
        except ValueError as e:
            missing += 1
            log.warning("sample %r skipped: %s", s.id, e)
            continue
        usable.append((s, stem, suffix))
    if not usable:
        raise ValueError("no sample has a readable image")
    train_ids, val_ids = split([str(s.id) for s, _, _ in usable], val_fraction)
    if not val_ids:
        log.warning("only one usable sample: it is used for both training and validation")
        val_ids = list(train_ids)
    val_set, train_set = set(val_ids), set(train_ids)

    counts = Counter()
    for s, stem, suffix in usable:
        lines = lines_of[str(s.id)]
        parts = [p for p, ids in (("train", train_set), ("val", val_set)) if str(s.id) in ids]
        for part in parts:
            _link(Path(s.image), out_dir / "images" / part / f"{stem}{suffix}")
            (out_dir / "labels" / part / f"{stem}.txt").write_text("".join(f"{ln}\n" for ln in lines),
                                                                    encoding="utf-8")
            counts[part] += 1
            counts[f"{part}_objects"] += len(lines)
    if skipped:
        log.warning("skipped %d objects of classes not in class_names: %s", sum(skipped.values()),
                    dict(sorted(skipped.items())))
    data = {
        "path": str(out_dir),
        "train": "images/train",
        "val": "images/val",
        "names": {i: n for i, n in enumerate(names)},
    }
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    log.info("dataset %s: %d train images (%d objects), %d val images (%d objects), %d skipped images",
             out_dir, counts["train"], counts["train_objects"], counts["val"], counts["val_objects"], missing)
    return YoloDataset(data_yaml, list(train_ids), list(val_ids))
