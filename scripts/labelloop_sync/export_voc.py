"""`export --format voc`: Pascal VOC XML per image (boxes; polygons and brush masks by their bounding boxes)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm import tqdm

from .context import Context
from .errors import SyncError
from .export_media import Media
from .export_regions import SHAPES, config_labels, regions


def _object(root: ET.Element, label: str, box: tuple[float, float, float, float]) -> None:
    x, y, bw, bh = box
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = label
    ET.SubElement(obj, "pose").text = "Unspecified"
    ET.SubElement(obj, "truncated").text = "0"
    ET.SubElement(obj, "difficult").text = "0"
    bndbox = ET.SubElement(obj, "bndbox")
    # VOC boxes are 1-based pixel corners
    for tag, value in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + bw), ("ymax", y + bh)):
        ET.SubElement(bndbox, tag).text = str(int(round(value)))


def write_voc(ctx: Context, items: list, out: Path, copy: bool) -> list[Path]:
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    labels = config_labels(ctx.label_config)
    with Media(ctx, out, "JPEGImages", copy) as media:
        for item in tqdm(items, desc="voc", unit="task", disable=len(items) < 20):
            w, h = media.image_size(item, media.fetch(item))
            root = ET.Element("annotation")
            ET.SubElement(root, "folder").text = "JPEGImages"
            ET.SubElement(root, "filename").text = media.name(item)
            size = ET.SubElement(root, "size")
            for tag, value in (("width", w), ("height", h), ("depth", 3)):
                ET.SubElement(size, tag).text = str(value)
            ET.SubElement(root, "segmented").text = "0"
            for region in regions(item.result):
                if region.kind in SHAPES:
                    labels += [region.label] if region.label not in labels else []
                    try:
                        _object(root, region.label, region.bbox(w, h))
                    except ValueError as e:
                        raise SyncError(f"task {item.id}: {e}") from None
            ET.indent(root)
            ET.ElementTree(root).write(out / "Annotations" / (Path(media.name(item)).stem + ".xml"),
                                       encoding="utf-8", xml_declaration=True)
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in labels))
    return [out / "Annotations", out / "labels.txt"]
