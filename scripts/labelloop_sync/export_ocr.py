"""`export --format ocr`: an OCR manifest, `ocr.jsonl`, one line per text region (`<Image>` with
`<Rectangle>`/`<Polygon>` regions, `<Labels>` and a per-region `<TextArea>`), and with `--copy-media` the images and
a crop of every line, turned upright, as recognition training data.

A row holds `image` (the copy's path in the export, else the task's media), `ls_task_id`, `region_id`, `label`,
`text` (the region's TextArea, lines joined by a newline; "" when it has none), `bbox` [x, y, width, height] in
pixels for an upright rectangle or `points` [[x, y], ...] in pixels for a polygon or a rotated rectangle, and
`crop` with `--copy-media`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .context import Context
from .errors import SyncError
from .export_media import Media
from .export_regions import Region, regions


def _upright(region: Region) -> bool:
    return region.kind == "rectangle" and not float(region.value.get("rotation") or 0) % 360


def _quad(region: Region, w: int, h: int) -> np.ndarray:
    """The 4 corners (top-left, top-right, bottom-right, bottom-left in reading order) of the line's box: a
    rectangle's own, a polygon's smallest rotated rectangle (ordered as PaddleOCR orders it)."""
    if region.kind == "rectangle":
        return np.asarray(region.corners(w, h), dtype=np.float32)
    box = cv2.boxPoints(cv2.minAreaRect(np.asarray(region.corners(w, h), dtype=np.float32)))
    box = box[np.argsort(box[:, 0])]
    left, right = box[:2][np.argsort(box[:2, 1])], box[2:][np.argsort(box[2:, 1])]
    return np.stack([left[0], right[0], right[1], left[1]])


def line_crop(image: np.ndarray, region: Region) -> np.ndarray | None:
    """The region's pixels turned upright (a perspective warp of its box), None when it has no area."""
    h, w = image.shape[:2]
    quad = _quad(region, w, h)
    cw = int(round(max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))))
    ch = int(round(max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))))
    if cw < 1 or ch < 1:
        return None
    target = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    return cv2.warpPerspective(image, cv2.getPerspectiveTransform(quad, target), (cw, ch),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def _row(item: Any, region: Region, image: str, w: int, h: int) -> dict[str, Any]:
    row: dict[str, Any] = {"image": image, "ls_task_id": item.id, "region_id": region.id, "label": region.label,
                           "text": region.text or ""}
    if _upright(region):
        row["bbox"] = [round(v, 2) for v in region.bbox(w, h)]
    else:
        row["points"] = [[round(x, 2), round(y, 2)] for x, y in region.corners(w, h)]
    return row


def write_ocr(ctx: Context, items: list, out: Path, copy: bool) -> list[Path]:
    path, crops = out / "ocr.jsonl", out / "crops"
    with Media(ctx, out, "images", copy) as media, open(path, "w", encoding="utf-8") as f:
        for item in tqdm(items, desc="ocr", unit="task", disable=len(items) < 20):
            copied = media.fetch(item)
            w, h = media.image_size(item, copied)
            lines = [r for r in regions(item.result) if r.kind in ("rectangle", "polygon")]
            image = cv2.imread(str(copied)) if copied and lines else None
            if copied and lines and image is None:
                raise SyncError(f"task {item.id}: {media.value(item)} is not an image OpenCV can read")
            for n, region in enumerate(lines):
                row = _row(item, region, f"images/{media.name(item)}" if copied else media.value(item), w, h)
                crop = line_crop(image, region) if image is not None else None
                if crop is not None:
                    crops.mkdir(parents=True, exist_ok=True)
                    name = f"{Path(media.name(item)).stem}_{n:03d}.png"
                    cv2.imwrite(str(crops / name), crop)
                    row["crop"] = f"crops/{name}"
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [path, *([crops] if crops.is_dir() else [])]
