"""Segmentation benchmark (by hand, not CI): SAM embedding time, click latency cold and cached, cache size per
image, Redis fetch latency, on coco128 images.

    .venv/bin/python -m bench.segmentation_bench --out bench/results                    # vit_t, ~1 min on 2 CPUs
    .venv/bin/python -m bench.segmentation_bench --kind vit_t --kind vit_b --threads 1 --threads 2 --start-redis
    .venv/bin/python -m bench.segmentation_bench --kind vit_t --checkpoint /models/mobile_sam.pt

No SAM weights are on the development machine, so models get random weights unless --checkpoint is given: the
timings are the same (same layers, same shapes), the masks are not meaningful. Each kind runs in its own subprocess
so its peak RSS is its own. Redis is measured with --redis-url (or $REDIS_URL), or --start-redis for a private
redis-server. Writes segmentation.json.
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
        "results": results}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
