"""`export --format coco`: annotations.json as pycocotools reads it. Boxes and polygons as polygon
`segmentation`s, brush masks as RLE `segmentation`s (pycocotools' compressed counts, as a str), keypoint instances
(`export_keypoints.py`) with `keypoints` [x, y, v] * K and `num_keypoints`, their categories with the `keypoints`
names and `skeleton`."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from .context import Context
from .errors import SyncError
from .export_keypoints import Instance, Skeleton, instances, skeleton
from .export_media import Media
from .export_regions import SHAPES, Region, config_labels, polygon_area, regions


class Categories:
    """COCO categories in config order, then labels met in the annotations; each with the skeleton when there is
    one."""

    def __init__(self, names: list[str], sk: Skeleton | None):
        self.sk, self.items, self._ids = sk, [], {}
        for name in names:
            self.id(name)

    def id(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = len(self.items) + 1
            extra = {"keypoints": self.sk.names, "skeleton": self.sk.edges()} if self.sk else {}
            self.items.append({"id": self._ids[name], "name": name, "supercategory": "none", **extra})
        return self._ids[name]


def shape_annotation(region: Region, w: int, h: int) -> dict[str, Any]:
    """`segmentation`, `bbox` and `area` of a box, polygon or brush mask, in pixels."""
    if region.kind == "mask":
        rle = mask_utils.encode(np.asfortranarray(region.mask(w, h).astype(np.uint8)))
        area, bbox = float(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]
        return {"segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")}, "area": area,
                "bbox": bbox}
    x, y, bw, bh = region.bbox(w, h)
    if region.kind == "rectangle":
        return {"segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], "area": bw * bh,
                "bbox": [x, y, bw, bh]}
    pts = region.corners(w, h)
    return {"segmentation": [[c for p in pts for c in p]], "area": polygon_area(pts), "bbox": [x, y, bw, bh]}


def keypoint_annotation(inst: Instance, sk: Skeleton, w: int, h: int) -> dict[str, Any]:
    """`keypoints` in the skeleton's order (v=2 labeled, 0 0 0 not), `num_keypoints`, and the box's shape (the
    keypoints' extent without a box)."""
    kps: list[float] = []
    for name in sk.names:
        kps += [round(inst.points[name][0], 2), round(inst.points[name][1], 2), 2] if name in inst.points \
            else [0, 0, 0]
    if inst.box is not None:
        shape = shape_annotation(inst.box, w, h)
    else:
        x, y, bw, bh = inst.bbox(w, h)
        shape = {"segmentation": [], "area": bw * bh, "bbox": [x, y, bw, bh]}
    return {**shape, "keypoints": kps, "num_keypoints": len(inst.points)}


def _annotations(found: list[Region], sk: Skeleton | None, w: int, h: int) -> list[tuple[str, dict]]:
    """(category name, annotation fields) of one image's regions."""
    if sk is None:
        return [(r.label, shape_annotation(r, w, h)) for r in found if r.kind in SHAPES]
    out = [(inst.category, keypoint_annotation(inst, sk, w, h)) for inst in instances(found, sk, w, h)]
    no_points = {"keypoints": [0, 0, 0] * len(sk.names), "num_keypoints": 0}
    return out + [(r.label, {**shape_annotation(r, w, h), **no_points}) for r in found
                  if r.kind in SHAPES and not (r.kind == "rectangle" and sk.boxes)]


def write_coco(ctx: Context, items: list, out: Path, copy: bool) -> list[Path]:
    found = {item.id: regions(item.result) for item in items}
    sk = skeleton(ctx.label_config, [r.label for rs in found.values() for r in rs if r.kind == "keypoint"])
    labels = config_labels(ctx.label_config)
    categories = Categories((sk.categories if sk else []) + labels, sk)
    images, annotations = [], []
    with Media(ctx, out, "images", copy) as media:
        for n, item in enumerate(tqdm(items, desc="coco", unit="task", disable=len(items) < 20), start=1):
            w, h = media.image_size(item, media.fetch(item))
            images.append({"id": n, "file_name": f"images/{media.name(item)}", "width": w, "height": h,
                           "license": 1, "ls_task_id": item.id})
            try:
                shapes = _annotations(found[item.id], sk, w, h)
            except ValueError as e:
                raise SyncError(f"task {item.id}: {e}") from None
            for label, fields in shapes:
                annotations.append({"id": len(annotations) + 1, "image_id": n, "category_id": categories.id(label),
                                    **fields, "iscrowd": 0})
    now = datetime.now(timezone.utc)
    coco = {"info": {"description": f"Label Studio project {ctx.project_id}: {ctx.title}", "version": "1.0",
                     "year": now.year, "contributor": "labelloop sync.py",
                     "date_created": now.isoformat(timespec="seconds")},
            "licenses": [{"id": 1, "name": "see the source of each image", "url": ""}],
            "images": images, "annotations": annotations, "categories": categories.items}
    path = out / "annotations.json"
    path.write_text(json.dumps(coco, indent=2, ensure_ascii=False))
    return [path]
