"""Annotated samples -> an Ultralytics YOLO dataset folder (images, label files, data.yaml).

Layout written by `build_dataset`::

    out_dir/
      data.yaml                      # absolute `path`, `train: images/train`, `val: images/val`, `names: {i: name}`
      images/{train,val}/<stem><ext> # symlinks to the original files (copies where symlinks fail)
      labels/{train,val}/<stem>.txt  # YOLO label lines, coordinates normalised to [0, 1]

Ultralytics finds a label file by replacing the last ``/images/`` of an image path with ``/labels/`` and the
suffix with ``.txt``; it writes ``labels/<split>.cache`` next to them, so ``out_dir`` must be writable (never point
training at a read-only shared dataset).

The train/validation split depends only on each sample's id (`split`), so a project that grows keeps every old
sample on the side it was on.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from .geometry import outline_xyxy, yolo_box_line, yolo_polygon_line
from .types import Sample

log = logging.getLogger(__name__)

# What Ultralytics reads as images (ultralytics.data.utils.IMG_FORMATS), compared on the lower-cased suffix.
IMG_SUFFIXES = frozenset({"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff",
                          "webp"})
# PIL format name -> suffix, for image files stored without a usable suffix (e.g. uploads named by hash).
_PIL_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tiff", "WEBP": ".webp", "MPO": ".jpg"}
# A box and a polygon of the same class describe the same object when the polygon's bounding box overlaps the box
# at least this much (IoU).
SAME_OBJECT_IOU = 0.9
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


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match_boxes_to_polygons(sample: Sample) -> tuple[set[int], set[int]]:
    """(indices of boxes, indices of polygons) that describe the same object: same class and the polygon's bounding
    box overlapping the box at IoU >= SAME_OBJECT_IOU, matched greedily one to one."""
    pairs = []
    for bi, (bc, box) in enumerate(sample.boxes):
        for pi, (pc, poly) in enumerate(sample.polygons):
            if bc == pc and len(np.asarray(poly).reshape(-1)) >= 4:
                iou = _iou(tuple(float(v) for v in box), outline_xyxy(poly, sample.width, sample.height))
                if iou >= SAME_OBJECT_IOU:
                    pairs.append((iou, bi, pi))
    boxes, polys = set(), set()
    for _, bi, pi in sorted(pairs, reverse=True):
        if bi not in boxes and pi not in polys:
            boxes.add(bi)
            polys.add(pi)
    return boxes, polys


def label_lines(sample: Sample, class_index: dict[str, int], task: str = "detect",
                skipped: Counter | None = None) -> list[str]:
    """YOLO label lines for one sample.

    Objects are the sample's boxes plus its polygons; a box and a polygon of the same class whose bounding box
    matches it (IoU >= 0.9) count as one object, whether the caller lists an outlined object in both lists or only
    in `polygons`.

    - "detect": one ``c xc yc w h`` line per object (a polygon-only object uses its bounding box).
    - "segment": one ``c x1 y1 x2 y2 ...`` polygon line per object; a box-only object uses the box's 4 corners.

    Coordinates are normalised by the sample's width/height and clipped to the image; zero-area objects are
    dropped. Classes missing from `class_index` are counted in `skipped` (by name) and dropped.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not sample.boxes and not sample.polygons:
        return []
    w, h = int(sample.width), int(sample.height)
    if w <= 0 or h <= 0:
        raise ValueError(f"sample {sample.id!r} has objects but no image size ({sample.width}x{sample.height})")
    matched_boxes, matched_polys = _match_boxes_to_polygons(sample)
    lines: list[str] = []

    def known(name: str) -> int | None:
        c = class_index.get(name)
        if c is None and skipped is not None:
            skipped[name] += 1
        return c

    for bi, (name, box) in enumerate(sample.boxes):
        if task == "segment" and bi in matched_boxes:
            continue  # its polygon is written below
        c = known(name)
        if c is None:
            continue
        if task == "detect":
            line = yolo_box_line(c, box, w, h)
        else:
            x1, y1, x2, y2 = (float(v) for v in box)
            line = yolo_polygon_line(c, [(x1, y1), (x2, y1), (x2, y2), (x1, y2)], w, h)
        if line:
            lines.append(line)
    for pi, (name, poly) in enumerate(sample.polygons):
        if task == "detect" and pi in matched_polys:
            continue  # its box was written above
        c = known(name)
        if c is None:
            continue
        if task == "detect":
            line = yolo_box_line(c, outline_xyxy(poly, w, h), w, h) if len(np.asarray(poly).reshape(-1)) >= 4 else None
        else:
            line = yolo_polygon_line(c, poly, w, h)
        if line:
            lines.append(line)
    return lines


def build_dataset(samples: Sequence[Sample], class_names: list[str], out_dir: Path, task: str = "detect",
                  val_fraction: float = 0.2) -> Path:
    """Write an Ultralytics dataset for `samples` under `out_dir` and return the path of its data.yaml.

    The split comes from `split` over the sample ids. Samples with no (known) objects stay as background images
    with an empty label file. Samples whose image is missing or of an unknown format, or that have objects but no
    size, are skipped with a warning. When there is a single usable sample it is used for both train and val
    (Ultralytics needs a non-empty val folder). Existing ``images/``, ``labels/`` and ``data.yaml`` under `out_dir`
    are replaced.

    Args:
        samples: annotated images (pixel coordinates of the image as annotated).
        class_names: the model's classes, in index order; objects of other classes are skipped (logged, counted).
        out_dir: folder to write; created when missing.
        task: "detect" (box lines) or "segment" (polygon lines; box-only objects become 4-corner polygons).
        val_fraction: see `split`.

    Returns:
        out_dir/data.yaml
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
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

    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "labels"):
        if (out_dir / sub).is_symlink() or (out_dir / sub).is_file():
            (out_dir / sub).unlink()
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    for part in ("train", "val"):
        (out_dir / "images" / part).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / part).mkdir(parents=True, exist_ok=True)

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
    val_set = set(val_ids)
    if not val_ids:
        log.warning("only one usable sample: it is used for both training and validation")

    counts = Counter()
    for s, stem, suffix in usable:
        lines = lines_of[str(s.id)]
        parts = ["val"] if str(s.id) in val_set else (["train", "val"] if not val_ids else ["train"])
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
    return data_yaml
