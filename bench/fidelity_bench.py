"""Fidelity bench (by hand, not CI): what the pre-annotations lose between the raw YOLO / YOLO-seg call and what
Label Studio stores, stage by stage, on coco128 images.

    .venv/bin/python -m bench.fidelity_bench --out bench/results               # ~5 min on 2 busy CPU cores
    .venv/bin/python -m bench.fidelity_bench --images 32 --no-label-studio     # the in-process stages only

Stages, each on the same images with the same confidence threshold (the writers' default) and inference size:

- raw: `ultralytics.YOLO(weights).predict(path, conf, imgsz)`, one image at a time, Ultralytics decoding the file.
  Boxes as `r.boxes`; masks as `r.masks.data` scaled back to the image (`ops.scale_masks`, what Ultralytics itself
  draws), and `r.masks.xy` (its outline) filled in.
- detector: labelloop's `detection.model.Detector.predict` on labelloop's decoding (`load_image`), one image, and
  a batch of 8 as served.
- served: the backend's `/predict` (Flask test client, the default params) -> result items -> pixels again
  (`backends.regions`): rectangles, polygons filled in, brush RLE decoded.
- label_studio (unless --no-label-studio): a real Label Studio (`ops.services.LabelStudioServer`) with the images
  uploaded, the backends as real processes (`python -m backends serve`) fetching the images from it, the
  predictions written with the SDK and read back with the SDK.

Measured: box AP50 (`detection.evaluate`, COCO classes, ground truth from instances_train2017.json) and, for masks,
the mean over ground-truth instances of the best IoU of a shown mask of the same class ("mean best IoU"), plus the
fidelity of each stage against raw itself: the share of raw detections found again (same class, box IoU >= 0.99,
score within 1e-3) and the mean IoU of each served mask with its raw mask.

coco128's images are YOLO's training images: the absolute numbers are optimistic, the differences between stages
are what this bench is for. Writes fidelity.json into --out.

Found (32 images, 225 instances, conf 0.1, imgsz 640; bench/results/fidelity.json): thresholds, max_det (300), NMS
IoU (0.7), the inference size (the model's own 640 when the project sets none) and labelloop's decoding equal
raw's (one image at a time through `Detector` gives raw's exact boxes). Two things differed:
- batches of images of mixed shapes: Ultralytics letterboxes them to a 640x640 square instead of each image's own
  rectangle, which changes the detections (only 10 % of raw's boxes came back unchanged; AP50 0.5497 against
  0.5586). Since 129c385 (`detection.pipeline`) a CPU batch holds images of one shape only; GPUs still batch mixed
  shapes.
- the polygon writer's simplification (0.5 % of the perimeter, at most 64 points): filled outlines kept IoU 0.969
  (p10 0.929) with the raw masks and cost 0.003 of the mean best IoU; `segmentation.masks.simplify_outline`
  (0.25 px) keeps 0.993 (p10 0.985), what Ultralytics' own outline keeps.
Percent coordinates (floats, not rounded), the brush RLE and Label Studio's storage lose nothing measurable: through
Label Studio the boxes score raw's AP50 exactly and the masks' mean best IoU is raw's + 0.0004.
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before detection / ultralytics are imported
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from backends.regions import polygon_pixels, rect_corners, rle_to_mask  # noqa: E402
from backends.regions_writers import DEFAULT_THRESHOLD  # noqa: E402
from detection.evaluate import evaluate  # noqa: E402
from detection.images import load_image  # noqa: E402
from detection.types import Detection  # noqa: E402
from segmentation.masks import polygon_mask  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
COCO = SHARED / "datasets" / "coco128"


@dataclass
class Truth:
    """One image's ground truth: its file, size, and per non-crowd instance (class, xyxy, mask)."""

    path: Path
    width: int
    height: int
    objects: list[tuple[str, tuple[float, float, float, float], np.ndarray]]


@dataclass
class Found:
    """One predicted object in pixels: class, score, box, and its mask where the stage has one."""

    cls: str
    score: float
    xyxy: tuple[float, float, float, float]
    mask: np.ndarray | None = None
    polygon: np.ndarray | None = None  # the model's outline (Detector stages)


@dataclass
class Stage:
    """One stage's predictions, per image."""

    name: str
    images: list[list[Found]] = field(default_factory=list)
    seconds: float = 0.0


def held_out(n: int) -> list[Truth]:
    """The last `n` coco128 images (by file name) that have non-crowd instances, with their ground truth."""
    from pycocotools.coco import COCO as CocoApi

    coco = CocoApi(str(COCO / "instances_train2017.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    out = []
    for img in sorted(coco.loadImgs(coco.getImgIds()), key=lambda i: i["file_name"], reverse=True):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"], iscrowd=False))
        if not anns:
            continue
        objects = [(names[a["category_id"]], _xywh_to_xyxy(a["bbox"]), coco.annToMask(a).astype(bool))
                   for a in anns]
        out.append(Truth(COCO / "images" / "train2017" / img["file_name"], img["width"], img["height"], objects))
        if len(out) == n:
            break
    return out[::-1]


def _xywh_to_xyxy(b) -> tuple[float, float, float, float]:
    return float(b[0]), float(b[1]), float(b[0] + b[2]), float(b[1] + b[3])


# -- stages -------------------------------------------------------------------------------------------------------
def raw_stage(weights: Path, truths: list[Truth], conf: float, imgsz: int, masks: str | None = None) -> Stage:
    """Ultralytics called directly, one image at a time; `masks`: None, "data" (scaled masks) or "xy" (outline)."""
    from ultralytics import YOLO
    from ultralytics.utils import ops

    yolo = YOLO(str(weights))
    stage = Stage(f"raw{'_' + masks if masks else ''}@{imgsz}")
    t0 = time.perf_counter()
    for t in truths:
        r = yolo.predict(str(t.path), conf=conf, imgsz=imgsz, verbose=False)[0]
        found = []
        full = None
        if masks == "data" and r.masks is not None:
            full = ops.scale_masks(r.masks.data[None].float(), r.orig_shape)[0] > 0.5
        for i, (b, s, c) in enumerate(zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist())):
            mask = None
            if masks == "data" and full is not None:
                mask = full[i].cpu().numpy()
            elif masks == "xy" and r.masks is not None:
                mask = _filled(r.masks.xy[i], t.width, t.height)
            found.append(Found(r.names[int(c)], float(s), tuple(b), mask))
        stage.images.append(found)
    stage.seconds = time.perf_counter() - t0
    return stage


def _filled(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    if polygon is None or len(polygon) < 3:
        return np.zeros((height, width), bool)
    return polygon_mask(np.asarray(polygon, dtype=np.float64), width, height)


def detector_stage(weights: Path, truths: list[Truth], conf: float, imgsz: int | None, batch: int) -> Stage:
    """labelloop's `Detector.predict` on labelloop's decoding, `batch` images a call; masks from its polygons."""
    from detection.model import Detector

    detector = Detector.load(str(weights))
    stage = Stage(f"detector_batch{batch}@{imgsz or 'own'}")
    t0 = time.perf_counter()
    for start in range(0, len(truths), batch):
        chunk = truths[start:start + batch]
        arrays = [load_image(t.path, 10**9) for t in chunk]
        for t, dets in zip(chunk, detector.predict(arrays, conf=conf, imgsz=imgsz, batch=batch)):
            stage.images.append([Found(d.cls, d.score, d.xyxy, _filled(d.polygon, t.width, t.height)
                                       if d.polygon is not None else None, d.polygon) for d in dets])
    stage.seconds = time.perf_counter() - t0
    return stage


def label_config(tag: str, classes: list[str]) -> str:
    labels = "".join(f'<Label value="{c}"/>' for c in classes)
    return f'<View><Image name="image" value="$image"/><{tag} name="label" toName="image">{labels}</{tag}></View>'


def parse_items(items: list[dict], width: int, height: int) -> list[Found]:
    """Result items (as the backend wrote them, or as Label Studio stored them) back in pixels of the image."""
    out = []
    for item in items:
        kind, value = item["type"], item["value"]
        w, h = int(item.get("original_width") or width), int(item.get("original_height") or height)
        if (w, h) != (width, height):
            raise AssertionError(f"item written for {w}x{h}, image is {width}x{height}")
        if kind == "rectanglelabels":
            corners = rect_corners(value, w, h)
            xyxy = (*corners.min(axis=0), *corners.max(axis=0))
            mask = None
        elif kind == "polygonlabels":
            points = polygon_pixels(value, w, h)
            mask = polygon_mask(points, w, h)
            xyxy = (*points.min(axis=0), *points.max(axis=0))
        elif kind == "brushlabels":
            mask = rle_to_mask(value["rle"], w, h)
            ys, xs = np.nonzero(mask)
            xyxy = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        else:
            continue
        out.append(Found(value[kind][0], float(item["score"]), tuple(float(v) for v in xyxy), mask))
    return out


def served_stage(task: str, tag: str, classes: list[str], truths: list[Truth], weights_dir: Path,
                 params: dict | None = None) -> Stage:
    """The backend's /predict through Flask's test client, with local image paths, in batches as Label Studio's
    manager CLI sends them (8 tasks)."""
    from backends.app import create_app
    from backends.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(model_dir=Path(tmp) / "models", weights_dir=weights_dir,
                            media_cache_dir=Path(tmp) / "media", local_roots=(COCO,))
        app = create_app(task, settings, warm=True)
        client = app.test_client()
        config = label_config(tag, classes)
        stage = Stage(f"served_{tag}" + (f"_{params}" if params else ""))
        t0 = time.perf_counter()
        for start in range(0, len(truths), 8):
            chunk = truths[start:start + 8]
            tasks = [{"id": start + k + 1, "data": {"image": str(t.path)}} for k, t in enumerate(chunk)]
            r = client.post("/predict", json={"tasks": tasks, "project": "1.1700000000", "label_config": config,
                                              "params": {"context": None, **(params or {})}})
            if r.status_code != 200:
                raise RuntimeError(f"/predict: {r.status_code} {r.json}")
            for t, result in zip(chunk, r.json["results"]):
                stage.images.append(parse_items(result["result"], t.width, t.height))
        stage.seconds = time.perf_counter() - t0
    return stage


# -- measures -----------------------------------------------------------------------------------------------------
def ap50(stage: Stage, truths: list[Truth], classes: list[str]) -> dict:
    preds = [[Detection(cls=f.cls, score=f.score, xyxy=f.xyxy) for f in image] for image in stage.images]
    gts = [[(c, box) for c, box, _ in t.objects] for t in truths]
    found = evaluate(preds, gts, classes)
    return {"map50": round(found["map50"], 4), "map50_95": round(found["map50_95"], 4),
            "detections": sum(len(i) for i in stage.images)}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def mean_best_iou(stage: Stage, truths: list[Truth]) -> float:
    """Mean over ground-truth instances of the best IoU of a predicted mask of the same class (0 when none)."""
    best = []
    for image, t in zip(stage.images, truths):
        for cls, _, gt in t.objects:
            best.append(max((_iou(f.mask, gt) for f in image if f.cls == cls and f.mask is not None), default=0.0))
    return round(float(np.mean(best)), 4)


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def against_raw(stage: Stage, raw: Stage) -> dict:
    """How much of raw's output a stage keeps: raw detections found again (same class, box IoU >= 0.99, score
    within 1e-3), extra ones, and the mean IoU of each kept object's mask with raw's mask."""
    kept = extra = 0
    mask_ious = []
    for mine, theirs in zip(stage.images, raw.images):
        claimed = set()
        for r in theirs:
            same = [k for k, f in enumerate(mine) if k not in claimed and f.cls == r.cls and
                    abs(f.score - r.score) <= 1e-3]
            if r.mask is not None:  # a brush's or polygon's box is its shape's, not the model's: match by mask
                same = [k for k in same if mine[k].mask is not None and _iou(mine[k].mask, r.mask) >= 0.5]
                match = max(same, key=lambda k: _iou(mine[k].mask, r.mask), default=None)
            else:
                match = next((k for k in same if _box_iou(mine[k].xyxy, r.xyxy) >= 0.99), None)
            if match is None:
                continue
            claimed.add(match)
            kept += 1
            if r.mask is not None and mine[match].mask is not None:
                mask_ious.append(_iou(mine[match].mask, r.mask))
        extra += len(mine) - len(claimed)
    total = sum(len(i) for i in raw.images)
    out = {"raw_kept": round(kept / total, 4) if total else None, "extra": extra}
    if mask_ious:
        out.update(mask_iou_with_raw_mean=round(float(np.mean(mask_ious)), 4),
                   mask_iou_with_raw_p10=round(float(np.percentile(mask_ious, 10)), 4))
    return out


def conversions(detector: Stage, truths: list[Truth]) -> list[Stage]:
    """The writers' conversions applied one at a time to the detector's own outlines: the former simplification
    (0.5 % of the perimeter, at most 64 points), the served one (`simplify_outline`, 0.25 px), the percent round
    trip of a polygon value, and the brush RLE round trip of the filled outline."""
    from backends.regions import mask_to_rle, points_to_polygon_value
    from detection.geometry import simplify_polygon
    from segmentation.masks import simplify_outline

    steps = {
        "outline_former_64pts_0.5pct": lambda p, w, h: _filled(simplify_polygon(p), w, h),
        "outline_served_0.25px": lambda p, w, h: _filled(simplify_outline(p), w, h),
        "outline_served_0.25px_percent_roundtrip": lambda p, w, h: _filled(
            polygon_pixels(points_to_polygon_value(simplify_outline(p), w, h), w, h), w, h),
        "brush_rle_roundtrip": lambda p, w, h: rle_to_mask(mask_to_rle(polygon_mask(p, w, h)), w, h),
    }
    out = []
    for name, step in steps.items():
        stage = Stage(name)
        for image, t in zip(detector.images, truths):
            stage.images.append([Found(f.cls, f.score, f.xyxy, step(f.polygon, t.width, t.height))
                                 for f in image if f.polygon is not None and simplify_outline(f.polygon) is not None])
        out.append(stage)
    return out


# -- Label Studio -------------------------------------------------------------------------------------------------
def label_studio_stages(truths: list[Truth], classes: list[str], weights_dir: Path, work: Path,
                        runs: list[tuple[str, str]]) -> list[Stage]:
    """Each (backend, control tag) of `runs` through a real Label Studio: the images uploaded to a project, the
    backend (a real process) asked for predictions of its tasks (8 a request, as `scripts.sync predict` sends them),
    which it fetches from Label Studio; the predictions written and read back with the SDK."""
    import requests
    from label_studio_sdk import LabelStudio

    from ops.services import LabelStudioServer, free_port, wait_for_port

    stages = []
    with LabelStudioServer(log_path=work / "label-studio.log") as server:
        sdk = LabelStudio(base_url=server.url, api_key=server.token)
        for backend, tag in runs:
            port = free_port()
            env = {**os.environ, "WEIGHTS_DIR": str(weights_dir), "MODEL_DIR": str(work / f"models-{backend}"),
                   "MEDIA_CACHE_DIR": str(work / f"media-{backend}"), "LABEL_STUDIO_URL": server.url,
                   "LABEL_STUDIO_API_KEY": server.token}
            with open(work / f"{backend}.log", "wb") as log:
                proc = subprocess.Popen([sys.executable, "-m", "backends", "serve", backend, "--host", "127.0.0.1",
                                         "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
            try:
                wait_for_port(port, 180, proc)
                stages.append(_through_label_studio(sdk, server, f"http://127.0.0.1:{port}", backend, tag, truths,
                                                    classes, requests))
            finally:
                proc.terminate()
                proc.wait(30)
    return stages


def _through_label_studio(sdk, server, backend_url: str, backend: str, tag: str, truths: list[Truth],
                          classes: list[str], requests) -> Stage:
    config = label_config(tag, classes)
    project = sdk.projects.create(title=f"fidelity {backend} {tag}", label_config=config)
    by_name = {}
    for t in truths:
        with open(t.path, "rb") as f:
            r = requests.post(f"{server.url}/api/projects/{project.id}/import", params={"return_task_ids": "true"},
                              headers={"Authorization": f"Token {server.token}"}, files={"file": (t.path.name, f)},
                              timeout=60)
        r.raise_for_status()
        by_name[t.path.name] = r.json()["task_ids"][0]
    stage = Stage(f"label_studio_{tag}")
    t0 = time.perf_counter()
    for start in range(0, len(truths), 8):
        chunk = truths[start:start + 8]
        tasks = [{"id": by_name[t.path.name], "data": dict(sdk.tasks.get(by_name[t.path.name]).data)} for t in chunk]
        r = requests.post(f"{backend_url}/predict", json={"tasks": tasks, "project": f"{project.id}.1700000000",
                                                          "label_config": config}, timeout=600)
        r.raise_for_status()
        preds = [{"task": task["id"], "result": res["result"], "score": res.get("score"),
                  "model_version": res.get("model_version") or r.json().get("model_version")}
                 for task, res in zip(tasks, r.json()["results"])]
        missing = [res.get("error") for res in r.json()["results"] if "result" not in res]
        if missing:
            raise RuntimeError(f"{backend}: {missing[:2]}")
        sdk.projects.import_predictions(project.id, request=preds)
    stage.seconds = time.perf_counter() - t0
    for t in truths:
        [stored] = list(sdk.predictions.list(task=by_name[t.path.name]))
        stage.images.append(parse_items([_plain(i) for i in stored.result], t.width, t.height))
    return stage


def _plain(item) -> dict:
    return item if isinstance(item, dict) else item.model_dump() if hasattr(item, "model_dump") else dict(item)


# -- main ---------------------------------------------------------------------------------------------------------
def summary(report: dict) -> dict:
    """Each stage against raw at the same confidence and size: its AP50 (boxes) or mean best IoU (masks) minus
    raw's, and the goals of issue 16 (AP50 within 0.005, mask IoU within 0.01)."""
    boxes, masks = report["boxes"], report["masks"]
    raw_box, raw_mask = boxes["raw@640"]["map50"], masks["raw_data@640"]["mean_best_iou"]
    out = {"box_ap50_minus_raw": {k: round(v["map50"] - raw_box, 4) for k, v in boxes.items() if k != "raw@640"},
           "mask_mean_best_iou_minus_raw": {k: round(v["mean_best_iou"] - raw_mask, 4) for k, v in masks.items()
                                            if k != "raw_data@640" and "@320" not in k}}
    ls_box = boxes.get("label_studio_RectangleLabels")
    ls_masks = [v for k, v in masks.items() if k.startswith("label_studio_")]
    if ls_box is not None and ls_masks:
        out["goals_met_through_label_studio"] = bool(
            abs(ls_box["map50"] - raw_box) <= 0.005 and all(abs(v["mean_best_iou"] - raw_mask) <= 0.01
                                                           for v in ls_masks))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--weights-dir", type=Path, default=Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")))
    parser.add_argument("--no-label-studio", action="store_true", help="only the in-process stages")
    args = parser.parse_args(argv)
    from ultralytics import YOLO

    load = [round(v, 2) for v in os.getloadavg()]
    truths = held_out(args.images)
    box_w, seg_w = args.weights_dir / "yolov8n.pt", args.weights_dir / "yolov8n-seg.pt"
    classes = list(YOLO(str(box_w)).names.values())
    conf = DEFAULT_THRESHOLD
    report: dict = {"images": len(truths), "instances": sum(len(t.objects) for t in truths),
                    "conf": conf, "imgsz": 640, "weights": [box_w.name, seg_w.name], "load_average_start": load,
                    "boxes": {}, "masks": {}}

    def boxes(stage: Stage, raw: Stage) -> None:
        report["boxes"][stage.name] = {**ap50(stage, truths, classes), **against_raw(stage, raw),
                                       "seconds": round(stage.seconds, 1)}
        print("boxes", stage.name, report["boxes"][stage.name], flush=True)

    def masks(stage: Stage, raw: Stage) -> None:
        report["masks"][stage.name] = {"mean_best_iou": mean_best_iou(stage, truths), **against_raw(stage, raw),
                                       "seconds": round(stage.seconds, 1)}
        print("masks", stage.name, report["masks"][stage.name], flush=True)

    raw = raw_stage(box_w, truths, conf, 640)
    for stage in (raw, detector_stage(box_w, truths, conf, None, 1), detector_stage(box_w, truths, conf, None, 8),
                  served_stage("detection", "RectangleLabels", classes, truths, args.weights_dir)):
        boxes(stage, raw)
    raw_masks = raw_stage(seg_w, truths, conf, 640, "data")
    single = detector_stage(seg_w, truths, conf, None, 1)
    for stage in (raw_masks, raw_stage(seg_w, truths, conf, 640, "xy"), raw_stage(seg_w, truths, conf, 320, "data"),
                  single, *conversions(single, truths), detector_stage(seg_w, truths, conf, None, 8),
                  served_stage("segmentation", "BrushLabels", classes, truths, args.weights_dir),
                  served_stage("segmentation", "PolygonLabels", classes, truths, args.weights_dir)):
        masks(stage, raw_masks)
    if not args.no_label_studio:
        with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
            for stage in label_studio_stages(truths, classes, args.weights_dir, Path(tmp),
                                             [("detection", "RectangleLabels"), ("segmentation", "BrushLabels"),
                                              ("segmentation", "PolygonLabels")]):
                (boxes if stage.name.endswith("RectangleLabels") else masks)(
                    stage, raw if stage.name.endswith("RectangleLabels") else raw_masks)
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["summary"] = summary(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fidelity.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'fidelity.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
