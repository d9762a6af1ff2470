"""`export --format yolo`: Ultralytics' layout (labels/*.txt, classes.txt, data.yaml), as their loaders read it.

Boxes as `class cx cy w h`; in a project with polygons or brush masks every region as a segment
`class x1 y1 x2 y2 ...` (boxes by their corners: Ultralytics does not take both kinds in one file), a mask by its
outer contour (several parts joined the way Ultralytics' own COCO converter joins them); in a keypoint project one
pose line per instance, `class cx cy w h` then `x y v` per keypoint, with `kpt_shape` and `flip_idx` in data.yaml.
All coordinates are normalised to the image size.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .context import Context
from .errors import SyncError
from .export_keypoints import Instance, Skeleton, instances, skeleton
from .export_media import Media
from .export_regions import SHAPES, Region, config_labels, regions

MIN_PART = 0.05  # parts of a mask smaller than this share of its largest part are left out of its segment


def mask_outline(mask: np.ndarray) -> np.ndarray | None:
    """A mask's outer contour as (N, 2) pixel points, parts joined into one outline; None for an empty mask."""
    from ultralytics.data.converter import merge_multi_segment

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts = [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 3]
    if not parts:
        return None
    largest = max(cv2.contourArea(p.astype(np.float32)) for p in parts)
    parts = [p for p in parts if cv2.contourArea(p.astype(np.float32)) >= MIN_PART * largest]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(merge_multi_segment([p.reshape(-1).tolist() for p in parts]), axis=0)


def _norm(points: np.ndarray | list, w: int, h: int) -> str:
    pts = np.clip(np.asarray(points, dtype=np.float64).reshape(-1, 2) / (w, h), 0.0, 1.0)
    return " ".join(f"{x:.6f} {y:.6f}" for x, y in pts)


def shape_line(region: Region, cls: int, w: int, h: int, segments: bool) -> str | None:
    """One region's label line: a box, or a segment when `segments`."""
    if not segments and region.kind == "rectangle":
        x, y, bw, bh = region.bbox(w, h)
        return f"{cls} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}"
    points = mask_outline(region.mask(w, h)) if region.kind == "mask" else region.corners(w, h)
    return None if points is None else f"{cls} {_norm(points, w, h)}"


def pose_line(inst: Instance, cls: int, sk: Skeleton, w: int, h: int) -> str:
    """`cls cx cy w h` then `x y v` per keypoint of the skeleton (0 0 0 for one not labeled)."""
    x, y, bw, bh = inst.bbox(w, h)
    kps = [f"{_norm([inst.points[n]], w, h)} 2" if n in inst.points else "0 0 0" for n in sk.names]
    return f"{cls} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f} " + " ".join(kps)


def _data_yaml(out: Path, names: list[str], sk: Skeleton | None) -> str:
    text = (f"path: {out.resolve()}\ntrain: images\nval: images\nnames:\n"
            + "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(names)))
    if sk is not None:
        text += f"kpt_shape: [{len(sk.names)}, 3]\nflip_idx: {json.dumps(sk.flip_idx())}\n"
    return text


def write_yolo(ctx: Context, items: list, out: Path, copy: bool) -> list[Path]:
    found = {item.id: regions(item.result) for item in items}
    sk = skeleton(ctx.label_config, [r.label for rs in found.values() for r in rs if r.kind == "keypoint"])
    names = (sk.categories if sk else []) + [n for n in config_labels(ctx.label_config)
                                             if not sk or n not in sk.categories]
    segments = sk is None and ("<PolygonLabels" in ctx.label_config or "<BrushLabels" in ctx.label_config
                               or any(r.kind in ("polygon", "mask") for rs in found.values() for r in rs))

    def cls(label: str) -> int:
        if label not in names:
            names.append(label)
        return names.index(label)

    (out / "labels").mkdir(parents=True, exist_ok=True)
    with Media(ctx, out, "images", copy) as media:
        for item in tqdm(items, desc="yolo", unit="task", disable=len(items) < 20):
            w, h = media.image_size(item, media.fetch(item))
            try:
                if sk is not None:
                    lines = [pose_line(i, cls(i.category), sk, w, h) for i in instances(found[item.id], sk, w, h)]
                else:
                    lines = [shape_line(r, cls(r.label), w, h, segments) for r in found[item.id]
                             if r.kind in SHAPES]
            except ValueError as e:
                raise SyncError(f"task {item.id}: {e}") from None
            # an image without objects still gets its (empty) label file: a negative example, not a missing one
            (out / "labels" / (Path(media.name(item)).stem + ".txt")).write_text(
                "".join(f"{ln}\n" for ln in lines if ln))
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    (out / "data.yaml").write_text(_data_yaml(out, names, sk))
    return [out / "classes.txt", out / "data.yaml", out / "labels"]
