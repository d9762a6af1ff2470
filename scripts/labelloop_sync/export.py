"""`export`: completed tasks as JSON, CSV, COCO, YOLO, Pascal VOC, an ASR manifest, or text spans as CoNLL BIO
lines or spaCy JSONL (`export_spans.py`), with annotator agreement.

A task is completed when it has at least one submitted (not cancelled) annotation; the exported labels are the
newest such annotation's (the rule training uses). Tasks with several annotations get their agreement
(`agreement.py`); `--min-agreement` drops those below it (tasks with a single annotation have none and are kept).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import struct
import wave
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tqdm import tqdm

from lsclient import newest_annotation

from . import export_spans
from .agreement import task_agreement
from .context import Context, done_annotations, iter_tasks, plain
from .errors import SyncError
from .importing import data_key

FORMATS = ("json", "csv", "coco", "yolo", "voc", "asr-manifest", "conll", "spacy-jsonl")
REGION_TYPES = ("rectanglelabels", "polygonlabels")


@dataclass
class Item:
    """One exported task: its data, the chosen annotation's result, agreement and annotation count."""

    id: int
    data: dict
    result: list[dict]
    agreement: float | None
    n_annotations: int
    annotations: list[dict]
    top_k: dict[str, list[dict]] = field(default_factory=dict)  # the newest prediction's k best classes per control


def collect(ctx: Context, include_all: bool = False, min_agreement: float | None = None) -> tuple[list[Item], int]:
    """The tasks to export and how many completed ones `min_agreement` dropped."""
    items, dropped = [], 0
    for task in iter_tasks(ctx):
        done = done_annotations(task)
        if not done and not include_all:
            continue
        agreement = task_agreement(done)
        if min_agreement is not None and agreement is not None and agreement < min_agreement:
            dropped += 1
            continue
        chosen = newest_annotation(done)
        items.append(Item(task.id, dict(task.data or {}), list(chosen.get("result") or []) if chosen else [],
                          agreement, len(done), done, _top_k(task)))
    return items, dropped


def _top_k(task: Any) -> dict[str, list[dict]]:
    """The newest prediction's `value.top_k` per control ([{"label", "score"}], as the image_cls backend writes)."""
    newest = max((plain(p) for p in getattr(task, "predictions", None) or []), key=lambda p: p.get("id") or 0,
                 default={})
    return {r.get("from_name", ""): r["value"]["top_k"] for r in newest.get("result") or []
            if isinstance(r.get("value"), dict) and isinstance(r["value"].get("top_k"), list)}


def _labels(label_config: str) -> list[str]:
    """Region label names in config order (RectangleLabels / PolygonLabels / Labels children)."""
    root = ET.fromstring(label_config)
    names: list[str] = []
    for tag in root.iter():
        if tag.tag in ("RectangleLabels", "PolygonLabels", "Labels", "BrushLabels"):
            for child in tag:
                if child.tag == "Label" and child.get("value") not in names:
                    names.append(child.get("value"))
    return names


def _media_name(value: str, task_id: int) -> str:
    parsed = urlparse(value)
    if parsed.query and "d" in parse_qs(parsed.query):  # /data/local-files/?d=dir/file.jpg
        name = Path(unquote(parse_qs(parsed.query)["d"][0])).name
    else:
        name = Path(unquote(parsed.path)).name
    return name or f"task-{task_id}"


def _download(ctx: Context, value: str, dest: Path) -> Path:
    """Copy a task's media (Label Studio upload, local-files, http URL or local path) to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if Path(value).is_file():
        shutil.copyfile(value, dest)
        return dest
    if value.startswith("/"):
        r = ctx.ls.raw("GET", value, f"downloading {value}", stream=True)
    elif value.startswith(ctx.ls.url + "/"):
        r = ctx.ls.raw("GET", value[len(ctx.ls.url):], f"downloading {value}", stream=True)
    elif value.startswith(("http://", "https://")):
        import requests

        try:
            r = requests.get(value, timeout=300, stream=True)
            r.raise_for_status()
        except requests.RequestException as e:
            raise SyncError(f"cannot download {value}: {type(e).__name__}") from None
    else:
        raise SyncError(f"cannot copy {value!r}: not a local file, URL or Label Studio path")
    with open(dest, "wb") as f:
        for block in r.iter_content(1 << 16):
            f.write(block)
    return dest


class Media:
    """Unique file names per task, and copies when asked."""

    def __init__(self, ctx: Context, out: Path, subdir: str, copy: bool):
        self.ctx, self.dir, self.copy = ctx, out / subdir, copy
        self.key = data_key(ctx.label_config)
        self._names: dict[int, str] = {}
        self._taken: set[str] = set()

    def name(self, item: Item) -> str:
        if item.id not in self._names:
            name = _media_name(str(item.data.get(self.key, "")), item.id)
            if name in self._taken:
                name = f"{item.id}_{name}"
            self._taken.add(name)
            self._names[item.id] = name
        return self._names[item.id]

    def fetch(self, item: Item) -> Path | None:
        if not self.copy:
            return None
        return _download(self.ctx, str(item.data.get(self.key, "")), self.dir / self.name(item))


def _image_size(item: Item, local: Path | None, media: Media) -> tuple[int, int]:
    for r in item.result:
        if r.get("original_width") and r.get("original_height"):
            return int(r["original_width"]), int(r["original_height"])
    from PIL import Image

    path = local
    if path is None:  # not copied: fetch it just to read its size
        path = _download(media.ctx, str(item.data.get(media.key, "")), media.dir.parent / ".size" / media.name(item))
    with Image.open(path) as img:
        return img.size


def _regions(item: Item) -> list[tuple[str, str, dict, dict]]:
    """(type, label, value, region) of every box / polygon of the chosen annotation."""
    out = []
    for r in item.result:
        kind = str(r.get("type", "")).lower()
        v = r.get("value") or {}
        if kind in REGION_TYPES and v.get(kind):
            out.append((kind, v[kind][0], v, r))
    return out


def _rect_pixels(v: dict, w: int, h: int) -> tuple[float, float, float, float]:
    """Axis-aligned (x, y, w, h) in pixels of a Label Studio rectangle, rotation (about its top-left) included."""
    x, y = v["x"] * w / 100, v["y"] * h / 100
    bw, bh = v["width"] * w / 100, v["height"] * h / 100
    angle = math.radians(float(v.get("rotation") or 0))
    if angle:
        corners = [(0, 0), (bw, 0), (bw, bh), (0, bh)]
        pts = [(x + cx * math.cos(angle) - cy * math.sin(angle), y + cx * math.sin(angle) + cy * math.cos(angle))
               for cx, cy in corners]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x, y, bw, bh = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
    return x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)


def _poly_pixels(v: dict, w: int, h: int) -> list[tuple[float, float]]:
    return [(min(max(px, 0), 100) * w / 100, min(max(py, 0), 100) * h / 100) for px, py in v["points"]]


def _poly_area(points: list[tuple[float, float]]) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))) / 2


def _write_json(items: list[Item], out: Path) -> list[Path]:
    path = out / "tasks.json"
    path.write_text(json.dumps([{"id": i.id, "data": i.data, "annotations": i.annotations, "result": i.result,
                                 "agreement": i.agreement, **({"top_k": i.top_k} if i.top_k else {})}
                                for i in items], indent=2, ensure_ascii=False))
    return [path]


def _cell(regions: list[dict]) -> str:
    values = []
    for r in regions:
        v = r.get("value") or {}
        for key in ("choices", "taxonomy", "text", "rectanglelabels", "polygonlabels", "labels"):
            if key in v:
                values.extend("/".join(x) if isinstance(x, list) else str(x) for x in v[key])
    return "|".join(values)


def _write_csv(items: list[Item], out: Path) -> list[Path]:
    data_cols = sorted({k for i in items for k in i.data})
    controls = sorted({r.get("from_name", "") for i in items for r in i.result})
    top_k = ["top_k"] if any(i.top_k for i in items) else []  # "control=label:score|..." of the newest prediction
    path = out / "tasks.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *data_cols, *controls, "annotations", "agreement", *top_k])
        for i in items:
            by_control = {c: [r for r in i.result if r.get("from_name") == c] for c in controls}
            writer.writerow([i.id, *(i.data.get(c, "") for c in data_cols), *(_cell(by_control[c]) for c in controls),
                             i.n_annotations, "" if i.agreement is None else f"{i.agreement:.4f}",
                             *(["|".join(f"{c}={t['label']}:{t['score']}" for c, ks in i.top_k.items() for t in ks)]
                               if top_k else [])])
    return [path]


def _write_coco(ctx: Context, items: list[Item], out: Path, copy: bool) -> list[Path]:
    names = _labels(ctx.label_config)
    media = Media(ctx, out, "images", copy)
    categories = [{"id": n + 1, "name": name, "supercategory": "none"} for n, name in enumerate(names)]
    cat_id = {c["name"]: c["id"] for c in categories}
    images, annotations = [], []
    for n, item in enumerate(tqdm(items, desc="coco", unit="task", disable=len(items) < 20), start=1):
        local = media.fetch(item)
        w, h = _image_size(item, local, media)
        images.append({"id": n, "file_name": f"images/{media.name(item)}", "width": w, "height": h, "license": 1,
                       "ls_task_id": item.id})
        for kind, label, v, _ in _regions(item):
            if label not in cat_id:
                cat_id[label] = len(categories) + 1
                categories.append({"id": cat_id[label], "name": label, "supercategory": "none"})
            if kind == "rectanglelabels":
                x, y, bw, bh = _rect_pixels(v, w, h)
                seg, area = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], bw * bh
            else:
                pts = _poly_pixels(v, w, h)
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                x, y, bw, bh = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
                seg, area = [[c for p in pts for c in p]], _poly_area(pts)
            annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": cat_id[label],
                                "bbox": [x, y, bw, bh], "area": area, "segmentation": seg, "iscrowd": 0})
    shutil.rmtree(out / ".size", ignore_errors=True)
    coco = {"info": {"description": f"Label Studio project {ctx.project_id}: {ctx.title}", "version": "1.0",
                     "year": datetime.now(timezone.utc).year, "contributor": "labelloop sync.py",
                     "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "licenses": [{"id": 1, "name": "see the source of each image", "url": ""}],
            "images": images, "annotations": annotations, "categories": categories}
    path = out / "annotations.json"
    path.write_text(json.dumps(coco, indent=2, ensure_ascii=False))
    return [path]


def _write_yolo(ctx: Context, items: list[Item], out: Path, copy: bool) -> list[Path]:
    names = _labels(ctx.label_config)
    media = Media(ctx, out, "images", copy)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for item in tqdm(items, desc="yolo", unit="task", disable=len(items) < 20):
        local = media.fetch(item)
        w, h = _image_size(item, local, media)
        lines = []
        for kind, label, v, _ in _regions(item):
            if label not in names:
                names.append(label)
            cls = names.index(label)
            if kind == "rectanglelabels":
                x, y, bw, bh = _rect_pixels(v, w, h)
                lines.append(f"{cls} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
            else:
                pts = _poly_pixels(v, w, h)
                lines.append(f"{cls} " + " ".join(f"{px / w:.6f} {py / h:.6f}" for px, py in pts))
        # an image without objects still gets its (empty) label file: a negative example, not a missing one
        (out / "labels" / (Path(media.name(item)).stem + ".txt")).write_text("".join(f"{ln}\n" for ln in lines))
    shutil.rmtree(out / ".size", ignore_errors=True)
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    yaml_text = (f"path: {out.resolve()}\ntrain: images\nval: images\nnames:\n"
                 + "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(names)))
    (out / "data.yaml").write_text(yaml_text)
    return [out / "classes.txt", out / "data.yaml", out / "labels"]


def _write_voc(ctx: Context, items: list[Item], out: Path, copy: bool) -> list[Path]:
    media = Media(ctx, out, "JPEGImages", copy)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    labels = _labels(ctx.label_config)
    for item in tqdm(items, desc="voc", unit="task", disable=len(items) < 20):
        local = media.fetch(item)
        w, h = _image_size(item, local, media)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = media.name(item)
        size = ET.SubElement(root, "size")
        for tag, value in (("width", w), ("height", h), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(root, "segmented").text = "0"
        for kind, label, v, _ in _regions(item):
            if kind == "rectanglelabels":
                x, y, bw, bh = _rect_pixels(v, w, h)
            else:
                pts = _poly_pixels(v, w, h)
                x, y = min(p[0] for p in pts), min(p[1] for p in pts)
                bw, bh = max(p[0] for p in pts) - x, max(p[1] for p in pts) - y
            if label not in labels:
                labels.append(label)
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = label
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            box = ET.SubElement(obj, "bndbox")
            # VOC boxes are 1-based pixel corners
            for tag, value in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + bw), ("ymax", y + bh)):
                ET.SubElement(box, tag).text = str(int(round(value)))
        ET.indent(root)
        ET.ElementTree(root).write(out / "Annotations" / (Path(media.name(item)).stem + ".xml"), encoding="utf-8",
                                   xml_declaration=True)
    shutil.rmtree(out / ".size", ignore_errors=True)
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in labels))
    return [out / "Annotations", out / "labels.txt"]


def audio_duration(path: Path) -> float | None:
    """Seconds of a WAV or FLAC file from its header, None for other formats."""
    try:
        with open(path, "rb") as f:
            head = f.read(42)
        if head[:4] == b"fLaC":
            # STREAMINFO: 20-bit sample rate, 3+5 bits, 36-bit total samples, right after the block header
            bits = int.from_bytes(head[18:26], "big")
            rate, total = bits >> 44, bits & ((1 << 36) - 1)
            return round(total / rate, 3) if rate else None
        if head[:4] == b"RIFF":
            with wave.open(str(path), "rb") as w:
                return round(w.getnframes() / w.getframerate(), 3)
    except (OSError, wave.Error, EOFError, struct.error):
        return None
    return None


def _write_asr(ctx: Context, items: list[Item], out: Path, copy: bool) -> list[Path]:
    media = Media(ctx, out, "audio", copy)
    path = out / "manifest.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for item in tqdm(items, desc="asr", unit="task", disable=len(items) < 20):
            text = " ".join(t for r in item.result if str(r.get("type", "")).lower() == "textarea"
                            for t in (r.get("value") or {}).get("text") or [])
            local = media.fetch(item)
            row: dict[str, Any] = {"audio_filepath": str(local.resolve()) if local else item.data.get(media.key),
                                   "text": text.strip(), "ls_task_id": item.id}
            duration = audio_duration(local) if local else None
            if duration is not None:
                row["duration"] = duration
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [path]


def run(ctx: Context, fmt: str, out: Path, include_all: bool = False, min_agreement: float | None = None,
        copy_media: bool = False) -> dict[str, Any]:
    """The `export` command."""
    if fmt not in FORMATS:
        raise SyncError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}", code=2)
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise SyncError("--min-agreement must be within 0..1", code=2)
    items, dropped = collect(ctx, include_all, min_agreement)
    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if fmt == "json":
        files = _write_json(items, out)
    elif fmt == "csv":
        files = _write_csv(items, out)
    elif fmt == "coco":
        files = _write_coco(ctx, items, out, copy_media)
    elif fmt == "yolo":
        files = _write_yolo(ctx, items, out, copy_media)
    elif fmt == "voc":
        files = _write_voc(ctx, items, out, copy_media)
    elif fmt in ("conll", "spacy-jsonl"):
        writer = export_spans.write_conll if fmt == "conll" else export_spans.write_spacy_jsonl
        files, bad_spans = writer(items, ctx.label_config, out)
        extra["spans_outside_their_text"] = bad_spans
    else:
        files = _write_asr(ctx, items, out, copy_media)
    scored = [i.agreement for i in items if i.agreement is not None]
    report = {"format": fmt, "tasks": len(items), "dropped_low_agreement": dropped,
              "overlapping": len(scored), "mean_agreement": round(sum(scored) / len(scored), 4) if scored else None,
              "files": [str(f) for f in files], **extra}
    (out / "agreement.json").write_text(json.dumps(
        {**report, "per_task": {str(i.id): i.agreement for i in items if i.agreement is not None}}, indent=2))
    return report


