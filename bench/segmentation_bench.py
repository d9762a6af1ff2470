"""Segmentation benchmark (by hand, not CI): SAM embedding time, click latency cold and cached, cache size per
image, Redis fetch latency, on coco128 images; a click on an opened task through the backend's /predict against
the raw decoder call (`click_opened_task`); the two brush RLE encoders on real-sized masks (`rle`).

    .venv/bin/python -m bench.segmentation_bench --out bench/results                    # vit_t, ~1 min on 2 CPUs
    .venv/bin/python -m bench.segmentation_bench --kind vit_t --kind vit_b --threads 1 --threads 2 --start-redis
    .venv/bin/python -m bench.segmentation_bench --kind vit_t --checkpoint /models/mobile_sam.pt

No SAM weights are on the development machine, so models get random weights unless --checkpoint is given: the
timings are the same (same layers, same shapes), the masks are not meaningful. Each kind runs in its own subprocess
so its peak RSS is its own. Redis is measured with --redis-url (or $REDIS_URL), or --start-redis for a private
redis-server. Writes segmentation.json.

`click_opened_task`: the backend (random-weight MobileSAM saved as mobile_sam.pt, yolov8n-seg from WEIGHTS_DIR)
behind Flask's test client; each image's task is opened (/predict without context: automatic masks, embedding
kept), then clicks (one positive point) alternate between POST /predict with the click as context (media key,
decoder, upscaling, brush RLE, JSON) and the raw call, `SamPredictor.predict` on the same model after `set_image`.
Random weights draw speckled masks (see `mask_runs_per_pixel_median`), the costliest case for RLE; SAM's real masks
are smooth. `rle`: label-studio-sdk's encoder against label-studio-brush-rle-rs (requirements.txt) and the one
labelloop picks (`backends/brush_rle.py`), on a smooth and a speckled mask per size, alternated; `same_bytes`
says whether they wrote identical RLE. The committed segmentation.json keeps the quiet-machine `results` of
2026-11-22 and holds a later run's (busy machine) `results[0].click_opened_task` as its top-level
`click_opened_task`, beside `rle`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))


def _ms(values: list[float]) -> dict:
    return {"median_ms": round(1000 * statistics.median(values), 1), "min_ms": round(1000 * min(values), 1),
            "max_ms": round(1000 * max(values), 1), "n": len(values)}


def _coco(n_images: int) -> list[tuple[str, "object", list[list[float]]]]:
    """(file name, RGB image, COCO boxes xyxy) of the first n coco128 images (by id) with annotations."""
    import cv2

    root = SHARED / "datasets" / "coco128"
    data = json.loads((root / "instances_train2017.json").read_text(encoding="utf-8"))
    boxes: dict[int, list[list[float]]] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd"):
            x, y, w, h = a["bbox"]
            boxes.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    out = []
    for info in sorted(data["images"], key=lambda i: i["id"]):
        if info["id"] not in boxes:
            continue
        image = cv2.cvtColor(cv2.imread(str(root / "images" / "train2017" / info["file_name"])), cv2.COLOR_BGR2RGB)
        out.append((info["file_name"], image, boxes[info["id"]]))
        if len(out) == n_images:
            break
    return out


CLICK_CONFIG = """<View><Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="Object"/></BrushLabels>
  <KeyPointLabels name="point" toName="image" smart="true"><Label value="Object"/></KeyPointLabels>
</View>"""


def _click(x: float, y: float, width: int, height: int) -> dict:
    return {"type": "keypointlabels", "from_name": "point", "to_name": "image", "original_width": width,
            "original_height": height, "is_positive": True,
            "value": {"x": 100 * x / width, "y": 100 * y / height, "width": 0.5, "keypointlabels": ["Object"]}}


def click_opened_task(sam, n_images: int, clicks: int, folder: Path) -> dict:
    """Click latency on opened tasks through /predict against `SamPredictor.predict`, alternated (see the module
    docstring)."""
    import numpy as np
    import torch
    from mobile_sam import SamPredictor

    from backends.adapters.segmentation import SegmentationAdapter
    from backends.app import create_app
    from backends.brush_rle import runs
    from backends.config import Settings

    weights = folder / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), weights / "mobile_sam.pt")
    source = Path(os.environ.get("WEIGHTS_DIR") or SHARED / "models")
    (weights / "yolov8n-seg.pt").symlink_to(source / "yolov8n-seg.pt")
    coco = SHARED / "datasets" / "coco128" / "images" / "train2017"
    settings = Settings(model_dir=folder / "models", weights_dir=weights, media_cache_dir=folder / "media",
                        local_roots=(coco,))
    backend = SegmentationAdapter(settings)
    client = create_app(backend, settings).test_client()
    raw = SamPredictor(backend.segmenter().sam)
    http_s, raw_s, open_s, runs_per_pixel = [], [], [], []
    rng = np.random.default_rng(0)
    for name, image, boxes in _coco(n_images):
        h, w = image.shape[:2]
        task = {"id": 1, "data": {"image": str(coco / name)}}
        t = time.perf_counter()
        r = client.post("/predict", json={"tasks": [task], "label_config": CLICK_CONFIG, "project": "1.1"})
        open_s.append(time.perf_counter() - t)
        assert r.status_code == 200, r.json
        raw.set_image(image)
        for _ in range(clicks):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            context = {"result": [_click(x, y, w, h)]}
            t = time.perf_counter()
            r = client.post("/predict", json={"tasks": [task], "label_config": CLICK_CONFIG, "project": "1.1",
                                              "params": {"context": context}})
            http_s.append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json["results"][0]["result"], r.json
            t = time.perf_counter()
            masks, _, _ = raw.predict(np.array([[x, y]]), np.array([1]), multimask_output=True)
            raw_s.append(time.perf_counter() - t)
            runs_per_pixel.append(runs(masks[0]) / masks[0].size)
    http, rawd = _ms(http_s), _ms(raw_s)
    return {"clicks": len(http_s), "open_task": _ms(open_s), "http_predict_click": http,
            "raw_sam_predictor_predict": rawd, "ratio_median": round(http["median_ms"] / rawd["median_ms"], 2),
            "mask_runs_per_pixel_median": round(float(np.median(runs_per_pixel)), 4),
            "embedding_cache": backend.cache.stats()}


def rle_encoders(rounds: int) -> dict:
    """The SDK's brush RLE encoder against the Rust one (and the one labelloop picks), alternated, on a smooth and a
    speckled mask at 640x480, 810x1080 and 1920x1080."""
    import cv2
    import numpy as np

    from backends import brush_rle

    rng = np.random.default_rng(0)
    out = {"rust_installed": brush_rle._rust_encode_rle is not None, "cases": []}
    for h, w in ((480, 640), (1080, 810), (1080, 1920)):
        smooth = np.zeros((h, w), np.uint8)
        cv2.ellipse(smooth, (w // 2, h // 2), (w // 3, h // 4), 20, 0, 360, 1, -1)
        cv2.circle(smooth, (w // 5, h // 5), min(h, w) // 8, 1, -1)
        for shape, mask in (("smooth", smooth.astype(bool)), ("speckled_10%", rng.random((h, w)) < 0.1)):
            sides = {"sdk": brush_rle.sdk_encode, "labelloop": brush_rle.mask_to_rle}
            if out["rust_installed"]:
                sides["rust"] = brush_rle.rust_encode
            times: dict[str, list[float]] = {k: [] for k in sides}
            encoded = {}
            for _ in range(rounds):
                for name, encode in sides.items():
                    t = time.perf_counter()
                    encoded[name] = encode(mask)
                    times[name].append(time.perf_counter() - t)
            case = {"size": f"{w}x{h}", "mask": shape, "runs_per_pixel": round(brush_rle.runs(mask) / mask.size, 4),
                    **{name: _ms(v) for name, v in times.items()},
                    "same_bytes": len({tuple(v) for v in encoded.values()}) == 1}
            if "rust" in times:
                case["sdk_over_rust"] = round(statistics.median(times["sdk"]) / statistics.median(times["rust"]), 2)
            out["cases"].append(case)
    return out


def run_one(kind: str, image_size: int, n_images: int, clicks: int, checkpoint: str | None,
            redis_url: str | None) -> dict:
    """Benchmark one model kind in this process (called in a subprocess by main)."""
    import numpy as np
    import torch

    from segmentation.cache import EmbeddingCache, encode_entry
    from segmentation.engines import load_sam, model_id
    from segmentation.predictor import Segmenter

    t0 = time.perf_counter()
    sam = load_sam(kind, Path(checkpoint) if checkpoint else None, image_size=image_size,
                   random_init=checkpoint is None)
    load_s = time.perf_counter() - t0
    mid = model_id(kind, Path(checkpoint) if checkpoint else None, sam)
    images = _coco(n_images)
    out: dict = {"kind": kind, "image_size": image_size, "weights": checkpoint or "random", "model_id": mid,
                 "device": str(sam.device), "torch_threads": torch.get_num_threads(), "load_s": round(load_s, 2),
                 "params_m": {name: round(sum(p.numel() for p in getattr(sam, name).parameters()) / 1e6, 2)
                              for name in ("image_encoder", "prompt_encoder", "mask_decoder")},
                 "images": len(images), "image_sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for _, im, _ in images})}
    # warm-up: first calls allocate and pick kernels
    Segmenter(sam, mid, EmbeddingCache(max_bytes=0)).segment(images[0][1], np.array([[10, 10]]))

    embed_s, cold_s, cached = [], [], {"one_click": [], "three_points": [], "box": []}
    boxes_s, boxes_per_image = [], []
    entry_bytes, redis_value_bytes = [], []
    seg = Segmenter(sam, mid, EmbeddingCache())
    rng = np.random.default_rng(0)
    for _, image, boxes in images:
        h, w = image.shape[:2]
        cold = Segmenter(sam, mid, EmbeddingCache(max_bytes=0))
        t = time.perf_counter()
        cold.embed(image)
        embed_s.append(time.perf_counter() - t)
        x1, y1, x2, y2 = boxes[0]
        click = np.array([[(x1 + x2) / 2, (y1 + y2) / 2]])
        t = time.perf_counter()
        seg.segment(image, click)  # cold: embedding + decoding, what the first click on an image costs
        cold_s.append(time.perf_counter() - t)
        entry = seg.embed(image)
        entry_bytes.append(entry.nbytes)
        redis_value_bytes.append(len(encode_entry(entry)))
        for _ in range(clicks):
            pts = np.stack([rng.uniform(0, w, 3), rng.uniform(0, h, 3)], 1)
            for name, kwargs in (("one_click", {"points": pts[:1]}),
                                 ("three_points", {"points": pts, "point_labels": np.array([1, 1, 0])}),
                                 ("box", {"box": np.array(boxes[0])})):
                t = time.perf_counter()
                seg.segment(image, **kwargs)
                cached[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        seg.segment_boxes(image, np.array(boxes))
        boxes_s.append(time.perf_counter() - t)
        boxes_per_image.append(len(boxes))
    out["embed"] = _ms(embed_s)
    out["first_click_cold"] = _ms(cold_s)
    out["click_cached"] = {name: _ms(v) for name, v in cached.items()}
    out["segment_boxes"] = {**_ms(boxes_s), "boxes_per_image": round(float(np.mean(boxes_per_image)), 1),
                            "per_box_ms": round(1000 * sum(boxes_s) / sum(boxes_per_image), 1)}
    out["cache_bytes_per_image"] = {"memory": int(np.median(entry_bytes)), "redis_value": int(np.median(
        redis_value_bytes)), "embedding_shape": list(entry.embedding.shape), "dtype": str(entry.embedding.dtype)}
    out["images_per_512_mib"] = int(512 * 2**20 // np.median(entry_bytes))
    if redis_url:
        writer = EmbeddingCache(redis_url=redis_url, namespace="labelloop:bench")
        put_s, get_s = [], []
        for name, image, _ in images:
            entry = seg.embed(image)
            t = time.perf_counter()
            writer.put(f"{mid}:{name}", entry)
            put_s.append(time.perf_counter() - t)
        for name, _, _ in images:
            reader = EmbeddingCache(redis_url=redis_url, namespace="labelloop:bench")  # another worker: memory empty
            t = time.perf_counter()
            got = reader.get(f"{mid}:{name}")
            get_s.append(time.perf_counter() - t)
            assert got is not None and reader.stats()["redis_hits"] == 1
        out["redis"] = {"put": _ms(put_s), "fetch": _ms(get_s)}
    if checkpoint is None and image_size == 1024 and kind == "vit_t":  # what the backend loads as mobile_sam.pt
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            out["click_opened_task"] = click_opened_task(sam, n_images, clicks, Path(folder))
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--kind", action="append", help="vit_t, vit_b, vit_l or vit_h (repeatable); default vit_t")
    parser.add_argument("--image-size", type=int, default=1024, help="encoder input size (1024 = the real models)")
    parser.add_argument("--images", type=int, default=8, help="coco128 images")
    parser.add_argument("--clicks", type=int, default=5, help="cached clicks per image and prompt type")
    parser.add_argument("--checkpoint", help="real weights for the (single) kind, else random weights")
    parser.add_argument("--threads", type=int, action="append",
                        help="torch intra-op threads (repeatable: one run per value; default: torch's choice)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--start-redis", action="store_true", help="start a private redis-server to measure Redis")
    parser.add_argument("--rle-rounds", type=int, default=5, help="rounds of the RLE encoder comparison (0: skip)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads[0])
        print(json.dumps(run_one(args.one, args.image_size, args.images, args.clicks, args.checkpoint,
                                 args.redis_url)))
        return
    server = None
    if args.start_redis and not args.redis_url:
        from ops.services import RedisServer

        server = RedisServer()
        args.redis_url = server.url
    load_before = os.getloadavg()
    results = []
    try:
        for kind, threads in ((k, t) for k in args.kind or ["vit_t"] for t in args.threads or [None]):
            cmd = [sys.executable, "-m", "bench.segmentation_bench", "--one", kind, "--image-size",
                   str(args.image_size), "--images", str(args.images), "--clicks", str(args.clicks)]
            for flag, value in (("--checkpoint", args.checkpoint), ("--threads", threads),
                                ("--redis-url", args.redis_url)):
                if value:
                    cmd += [flag, str(value)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                results.append({"kind": kind, "error": proc.stderr.strip().splitlines()[-1:]})
                print(f"{kind}: failed: {proc.stderr[-800:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(json.dumps(r))
    finally:
        if server is not None:
            server.stop()
    rle = rle_encoders(args.rle_rounds) if args.rle_rounds else None
    if rle:
        print(json.dumps(rle))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation.json").write_text(json.dumps({
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
        "date": time.strftime("%Y-%m-%d"),
        "note": "random weights unless 'weights' names a checkpoint: timings and sizes are those of the real "
                "models (same layers and shapes), masks are meaningless. Latencies are wall time per call; "
                "'first_click_cold' = embedding + decoding, 'click_cached' = decoding against a cached embedding.",
        "results": results, **({"rle": rle} if rle else {})}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
