"""Detection benchmark (by hand, not CI): backend latency against raw Ultralytics, batch throughput, fine-tuning
time per epoch, and the mAP of the base weights on coco128.

    .venv/bin/python -m bench.detection_bench --out bench/results             # about 5 min on 2 CPU cores
    .venv/bin/python -m bench.detection_bench --parts latency throughput      # only some parts

1. latency: one task per POST /predict (Flask test client, in process, the real `DetectionAdapter`, a local file path
   in the task) against `YOLO(weights).predict(path)` on the same images, median / p90 ms, per weights file; the
   backend's time is split into Flask + JSON, media fetch, image decoding, model and region building.
2. throughput: images/s through /predict with N tasks per request, against raw batch predict on the same images.
3. training: `finetune` (extend_classes + build_dataset: person + a new Vehicle class, as the adapter does) at
   two image sizes; seconds per epoch normalised to 100 images, training and per-epoch validation apart.
4. map: box mAP of the base weights on all 128 coco128 images (80 classes, conf 0.001) with `detection.evaluate`,
   cross-checked against Ultralytics' own `model.val` on a dataset written by `build_dataset` in a temp folder.

Writes detection.json and detection.png into --out. CPU only (CUDA is hidden).
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before detection / ultralytics are imported
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the figures are for CPU serving

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))

import backends.regions_images as regions_images  # noqa: E402
import detection.pipeline as pipeline  # noqa: E402
from backends.adapters.detection import DetectionAdapter  # noqa: E402
from backends.app import create_app  # noqa: E402
from backends.config import Settings  # noqa: E402
from backends.regions_writers import RegionWriter  # noqa: E402
from detection.dataset import build_dataset  # noqa: E402
from detection.evaluate import evaluate  # noqa: E402
from detection.images import image_size, load_image  # noqa: E402
from detection.model import Detector  # noqa: E402
from detection.classes import extend_classes  # noqa: E402
from detection.train import TrainOptions, finetune  # noqa: E402
from detection.types import Sample  # noqa: E402
from ops.sample_data import coco128_names, coco128_samples  # noqa: E402
from scripts.labelloop_sync.templates import render  # noqa: E402  (the one writer of label configs)

PARTS = ("latency", "throughput", "training", "map")


# --------------------------------------------------------------------------------------------------------------------
# data


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=float)
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 1), "p90_ms": round(float(np.percentile(a, 90)), 1),
            "mean_ms": round(float(a.mean()), 1), "min_ms": round(float(a.min()), 1)}


# --------------------------------------------------------------------------------------------------------------------
# backend, instrumented


class Profile:
    """Wraps parts of the adapter to split a request's time: totals per part since the last `take()`."""

    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, fn, part: str):
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.current[part] += time.perf_counter() - t
        return timed

    def take(self) -> dict[str, float]:
        out, self.current = dict(self.current), defaultdict(float)
        return out


class Server:
    """`create_app` around a real `DetectionAdapter`, called through Flask's test client."""

    def __init__(self, work: Path, weights_dir: Path, data_root: Path):
        settings = Settings(model_dir=work / "models", weights_dir=weights_dir, media_cache_dir=work / "media",
                            local_roots=(data_root,), log_level="WARNING")
        self.backend = DetectionAdapter(settings)
        self.client = create_app(self.backend, settings).test_client()
        self.profile = p = Profile()
        b = self.backend
        b.predict = p.wrap(b.predict, "adapter")  # everything the adapter does
        # media fetch + header sizes + decode, in the pipeline's loading thread (overlapping the model's time)
        regions_images.task_files = p.wrap(regions_images.task_files, "fetch_decode")
        pipeline.image_size = p.wrap(image_size, "fetch_decode")
        pipeline.load_image = p.wrap(load_image, "decode")  # PIL decode (EXIF, RGB), also inside fetch_decode
        b.run = p.wrap(b.run, "model")  # Detector.predict for every plan + label mapping
        RegionWriter.predict_regions = p.wrap(RegionWriter.predict_regions, "regions")  # Label Studio region JSON
        self._wrapped: set[int] = set()

    def predict(self, paths: list[Path], config: str) -> tuple[list[dict], float, dict[str, float]]:
        tasks = [{"id": i + 1, "data": {"image": str(p)}} for i, p in enumerate(paths)]
        self.profile.take()
        t = time.perf_counter()
        r = self.client.post("/predict", json={"tasks": tasks, "project": "1.1", "label_config": config,
                                               "params": {"context": None}})
        elapsed = time.perf_counter() - t
        if r.status_code != 200:
            raise RuntimeError(f"/predict answered {r.status_code}: {r.get_json()}")
        results = r.get_json()["results"]
        bad = [a.get("error") for a in results if a.get("error")]
        if bad:
            raise RuntimeError(f"/predict failed tasks: {bad[:3]}")
        self._wrap_detectors()
        return results, elapsed, self.profile.take()

    def _wrap_detectors(self):
        # Ultralytics' own predict inside the model step (loaded on the first request for each weights file)
        for det in self.backend.pool.loaded.values():
            if id(det) not in self._wrapped:
                det.yolo.predict = self.profile.wrap(det.yolo.predict, "ultralytics")
                self._wrapped.add(id(det))


def split_request(total_s: float, parts: dict[str, float]) -> dict[str, float]:
    """Milliseconds of one request by where they went (adds up to the request's total)."""
    adapter, fd, dec = parts.get("adapter", 0.0), parts.get("fetch_decode", 0.0), parts.get("decode", 0.0)
    model, ultra, regions = parts.get("model", 0.0), parts.get("ultralytics", 0.0), parts.get("regions", 0.0)
    out = {
        "flask_json_config": total_s - adapter,  # request/response JSON, config check, project + version lookup
        "media_fetch": fd - dec,  # MediaFetcher.fetch (a local path: root check + stat) and the size check
        "decode_pil": dec,  # load_image: PIL decode, EXIF orientation, RGB array
        "ultralytics_predict": ultra,  # YOLO.predict on the arrays: letterbox, forward, NMS
        "detector_glue": model - ultra,  # RGB->BGR copy, Detection objects, label mapping
        "regions_json": regions,  # Label Studio region dicts
        "adapter_other": adapter - fd - model - regions,
    }
    return {k: v * 1000 for k, v in out.items()}


def raw_yolo(weights: Path):
    from ultralytics import YOLO

    return YOLO(str(weights), task="detect")


# --------------------------------------------------------------------------------------------------------------------
# 1. latency


def bench_latency(server: Server, weights: Path, names: list[str], paths: list[Path], warm: list[Path],
                  conf: float) -> dict:
    """Per-image ms through /predict (one task per request) and through raw YOLO.predict(path), interleaved."""
    import cv2

    config = render("detection", names, model_path=weights.name)
    raw = raw_yolo(weights)
    t = time.perf_counter()
    server.predict([warm[0]], config)  # loads the model
    first_backend = time.perf_counter() - t
    t = time.perf_counter()
    raw.predict(str(warm[0]), conf=conf, verbose=False)
    first_raw = time.perf_counter() - t
    for p in warm[1:]:
        server.predict([p], config)
        raw.predict(str(p), conf=conf, verbose=False)

    backend_ms, raw_ms, ratios, parts, raw_speed, n_regions, n_raw = [], [], [], [], [], [], []
    for i, path in enumerate(paths):
        def run_backend():
            results, elapsed, prof = server.predict([path], config)
            backend_ms.append(elapsed * 1000)
            parts.append(split_request(elapsed, prof))
            n_regions.append(len(results[0]["result"]))

        def run_raw():
            t0 = time.perf_counter()
            r = raw.predict(str(path), conf=conf, verbose=False)[0]
            raw_ms.append((time.perf_counter() - t0) * 1000)
            raw_speed.append(dict(r.speed))
            n_raw.append(len(r.boxes))

        for step in ((run_backend, run_raw) if i % 2 == 0 else (run_raw, run_backend)):  # alternate the order
            step()
        ratios.append(backend_ms[-1] / raw_ms[-1])

    # decoding alone, for the breakdown: the backend's PIL path against Ultralytics' cv2.imread
    # and Detector.predict's RGB->BGR copy (a negative-stride numpy copy) against OpenCV's channel swap
    pil_ms, cv2_ms, flip_ms, cvt_ms = [], [], [], []
    for path in paths:
        t0 = time.perf_counter()
        rgb = load_image(path)
        pil_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        cv2.imread(str(path))
        cv2_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        np.ascontiguousarray(rgb[..., ::-1])
        flip_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cvt_ms.append((time.perf_counter() - t0) * 1000)

    breakdown = {k: round(float(np.median([p[k] for p in parts])), 2) for k in parts[0]}
    raw_parts = {k: round(float(np.median([s[k] for s in raw_speed])), 2) for k in raw_speed[0]}
    out = {
        "weights": weights.name,
        "images": len(paths),
        "conf": conf,
        "first_call_s": {"backend_incl_model_load": round(first_backend, 2), "raw_incl_model_load": round(first_raw, 2)},
        "backend": stats(backend_ms),
        "raw": stats(raw_ms),
        "ratio_of_medians": round(float(np.median(backend_ms) / np.median(raw_ms)), 3),
        "median_paired_ratio": round(float(np.median(ratios)), 3),
        "backend_minus_raw_median_ms": round(float(np.median(np.subtract(backend_ms, raw_ms))), 1),
        "backend_breakdown_median_ms": breakdown,
        "raw_ultralytics_speed_median_ms": raw_parts,  # Ultralytics' own preprocess / inference / postprocess
        "image_ops_median_ms": {"pil_load_image": round(float(np.median(pil_ms)), 2),
                                "cv2_imread": round(float(np.median(cv2_ms)), 2),
                                "numpy_rgb_to_bgr_copy": round(float(np.median(flip_ms)), 2),
                                "cv2_cvtcolor_rgb2bgr": round(float(np.median(cvt_ms)), 2)},
        "regions_per_image": {"backend": round(float(np.mean(n_regions)), 2), "raw": round(float(np.mean(n_raw)), 2)},
        "per_image_ms": {"backend": [round(v, 1) for v in backend_ms], "raw": [round(v, 1) for v in raw_ms]},
    }
    print(f"  {weights.name}: backend {out['backend']['median_ms']} ms (p90 {out['backend']['p90_ms']}), raw "
          f"{out['raw']['median_ms']} ms (p90 {out['raw']['p90_ms']}), ratio {out['ratio_of_medians']} "
          f"(paired {out['median_paired_ratio']}); breakdown {breakdown}", flush=True)
    return out


# --------------------------------------------------------------------------------------------------------------------
# 2. throughput


def bench_throughput(server: Server, weights: Path, names: list[str], paths: list[Path], sizes: list[int],
                     conf: float, repeats: int = 1, server_batch: int = 8) -> dict:
    """Images/s through /predict with N tasks per request, and through raw batch predict over the same images.

    The backend runs its forward passes in batches of `batch_predict` (8 unless a project sets it); the raw side
    uses the same forward batch (min(N, 8)) so that both do the same model work. Each request is followed (or
    preceded: the order alternates) by the raw call on the same images, so load from other jobs hits both alike;
    with `repeats` > 1 the best pass of each is kept."""
    config = render("detection", names, model_path=weights.name)
    raw = raw_yolo(weights)
    server.predict(paths[:2], config)  # warm (model loaded, first batch)
    raw.predict([str(p) for p in paths[:2]], conf=conf, verbose=False, batch=2)
    rows = []
    for n in sizes:
        chunks = [paths[i:i + n] for i in range(0, len(paths), n)]
        fb = min(n, server_batch)
        best_backend = best_raw = float("inf")
        for rep in range(repeats):
            backend_s = raw_s = 0.0
            for k, chunk in enumerate(chunks):
                def run_backend():
                    return server.predict(chunk, config)[1]

                def run_raw():
                    t = time.perf_counter()
                    raw.predict([str(p) for p in chunk], conf=conf, verbose=False, batch=fb)
                    return time.perf_counter() - t

                if (k + rep) % 2 == 0:
                    backend_s += run_backend()
                    raw_s += run_raw()
                else:
                    raw_s += run_raw()
                    backend_s += run_backend()
            best_backend, best_raw = min(best_backend, backend_s), min(best_raw, raw_s)
        rows.append({"tasks_per_request": n, "requests": len(chunks), "forward_batch": fb,
                     "backend_images_per_s": round(len(paths) / best_backend, 2),
                     "raw_images_per_s": round(len(paths) / best_raw, 2),
                     "backend_over_raw_time": round(best_backend / best_raw, 3),
                     "backend_s": round(best_backend, 2), "raw_s": round(best_raw, 2)})
        print(f"  {weights.name} N={n}: backend {rows[-1]['backend_images_per_s']} img/s, raw "
              f"{rows[-1]['raw_images_per_s']} img/s", flush=True)
    return {"weights": weights.name, "images": len(paths), "repeats": repeats, "rows": rows}


# --------------------------------------------------------------------------------------------------------------------
# 3. training


class PhaseClock:
    """Times Ultralytics' training phases through its default callbacks (copied into every new YOLO object)."""

    EVENTS = ("on_pretrain_routine_start", "on_train_start", "on_train_epoch_start", "on_train_epoch_end",
              "on_fit_epoch_end", "on_train_end")

    def __init__(self):
        self.events: list[tuple[str, float]] = []
        self._fns = {}

    def __enter__(self):
        from ultralytics.utils.callbacks.base import default_callbacks

        for ev in self.EVENTS:
            fn = (lambda ev: lambda trainer: self.events.append((ev, time.time())))(ev)
            self._fns[ev] = fn
            default_callbacks[ev].append(fn)
        return self

    def __exit__(self, *exc):
        from ultralytics.utils.callbacks.base import default_callbacks

        for ev, fn in self._fns.items():
            default_callbacks[ev].remove(fn)

    def phases(self) -> dict:
        ev = self.events
        t = {name: [s for e, s in ev if e == name] for name in self.EVENTS}
        starts, ends, fits = t["on_train_epoch_start"], t["on_train_epoch_end"], t["on_fit_epoch_end"]
        epochs = [{"train_s": round(e - s, 2), "val_and_save_s": round(f - e, 2)}
                  for s, e, f in zip(starts, ends, fits)]
        out = {"epochs": epochs}
        if t["on_pretrain_routine_start"] and t["on_train_start"]:
            out["setup_s"] = round(t["on_train_start"][0] - t["on_pretrain_routine_start"][0], 2)
        if len(fits) > len(starts):  # the final validation of best.pt fires on_fit_epoch_end once more
            out["final_val_s"] = round(fits[-1] - fits[len(starts) - 1], 2)
        return out


def bench_training(samples: list[Sample], weights: Path, work: Path, configs: list[tuple[int, int]], epochs: int,
                   val_fraction: float) -> dict:
    names = ["person", "Vehicle"]
    train_samples = []
    for s in samples:
        t = Sample(id=s.id, image=s.image, width=s.width, height=s.height)
        for o in s.objects:
            if o.cls == "person":
                t.objects.append(o)
            elif o.cls in {"car", "motorcycle", "bus", "truck"}:
                t.objects.append(replace(o, cls="Vehicle"))
        train_samples.append(t)
    start = extend_classes(weights, names, work / "start.pt")
    data = build_dataset(train_samples, names, work / "dataset", val_fraction=val_fraction)
    n_train, n_val = len(data.train_ids), len(data.val_ids)
    rows = []
    for imgsz, batch in configs:
        opts = TrainOptions(epochs=epochs, imgsz=imgsz, batch=batch, patience=0, freeze=10, device="cpu")
        with PhaseClock() as clock:
            t = time.perf_counter()
            report = finetune(start, data.data_yaml, work / f"run-{imgsz}", opts)
            wall = time.perf_counter() - t
        ph = clock.phases()
        ep = ph["epochs"]
        steady = ep[1:] or ep  # the first epoch also pays one-off costs (first batches, allocator)
        train_s = float(np.mean([e["train_s"] for e in steady]))
        val_s = float(np.mean([e["val_and_save_s"] for e in steady]))
        row = {
            "imgsz": imgsz, "batch": batch, "freeze": 10, "epochs": report.epochs_run,
            "train_images": n_train, "val_images": n_val,
            "train_s_per_epoch": round(train_s, 2),
            "val_s_per_epoch": round(val_s, 2),
            "train_s_per_epoch_per_100_images": round(train_s * 100 / n_train, 2),
            "val_s_per_epoch_per_100_images": round(val_s * 100 / n_val, 2),
            "epoch_s_per_100_images": round((train_s + val_s) * 100 / (n_train + n_val), 2),
            "first_epoch": ep[0] if ep else None,
            "phases": ph,
            "report_epoch_seconds": report.epoch_seconds,  # TrainReport: training + validation per epoch
            "report_seconds": round(report.seconds, 2),
            "wall_s": round(wall, 2),
            "map50_after": round(report.metrics.get("metrics/mAP50(B)", float("nan")), 4),
            "map50_95_after": round(report.metrics.get("metrics/mAP50-95(B)", float("nan")), 4),
        }
        rows.append(row)
        print(f"  imgsz {imgsz} batch {batch}: train {row['train_s_per_epoch']} s/epoch "
              f"({row['train_s_per_epoch_per_100_images']} s per 100 images), val {row['val_s_per_epoch']} s "
              f"({row['val_s_per_epoch_per_100_images']} s per 100 images), whole run {row['wall_s']} s", flush=True)
    shutil.rmtree(work / "dataset", ignore_errors=True)
    return {"base": weights.name, "classes": names, "images": len(samples), "val_fraction": val_fraction,
            "rows": rows}


# --------------------------------------------------------------------------------------------------------------------
# 4. mAP


class multi_label_nms:
    """Within the block, Ultralytics' predictor runs NMS as its validator does (multi_label=True)."""

    def __enter__(self):
        from ultralytics.utils import nms

        self._nms, self._orig = nms, nms.non_max_suppression
        nms.non_max_suppression = lambda *a, **kw: self._orig(*a, **{**kw, "multi_label": True})

    def __exit__(self, *exc):
        self._nms.non_max_suppression = self._orig


def bench_map(weights_list: list[Path], names: list[str], samples: list[Sample], work: Path, imgsz: int,
              val_check: list[Path], val_rect: bool = False) -> dict:
    arrays = [load_image(s.image) for s in samples]
    truths = [s.boxes for s in samples]
    out: dict = {"images": len(samples), "instances": sum(len(t) for t in truths), "imgsz": imgsz, "conf": 0.001,
                 "models": {}}
    for weights in weights_list:
        det = Detector.load(weights, "detect")
        det.predict(arrays[:1], conf=0.001, imgsz=imgsz)
        t = time.perf_counter()
        preds = det.predict(arrays, conf=0.001, imgsz=imgsz, batch=8)
        pred_s = time.perf_counter() - t
        m = evaluate(preds, truths, names)
        out["models"][weights.name] = {
            "map50": round(m["map50"], 4), "map50_95": round(m["map50_95"], 4),
            "precision": round(m["precision"], 4), "recall": round(m["recall"], 4),
            "classes_with_truth": len(m["per_class"]), "predict_s": round(pred_s, 1),
        }
        print(f"  {weights.name}: evaluate mAP50 {m['map50']:.4f}, mAP50-95 {m['map50_95']:.4f} "
              f"({pred_s:.0f} s to predict)", flush=True)
    if val_check:
        # Ultralytics' val on the same 128 images: a dataset written by build_dataset in a writable temp folder
        # (its label cache cannot go into the read-only shared folder). split() keeps at least one image out of
        # val, so the yaml lists both folders as val.
        import yaml
        from ultralytics import YOLO

        data = build_dataset(samples, names, work / "coco128", val_fraction=1.0).data_yaml
        spec = yaml.safe_load(data.read_text(encoding="utf-8"))
        spec["val"] = ["images/val", "images/train"]
        data.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        out["ultralytics_val"] = {}
        for weights in val_check:
            row: dict = {}
            # rect=False: every image letterboxed to 640x640, as Detector.predict does for a batch of mixed shapes
            for rect in ((False, True) if val_rect else (False,)):
                t = time.perf_counter()
                r = YOLO(str(weights), task="detect").val(
                    data=str(data), imgsz=imgsz, batch=8 if weights.suffix == ".pt" else 1, conf=0.001, iou=0.7,
                    rect=rect, device="cpu", workers=0, plots=False, save_json=False, project=str(work / "val"),
                    name="val", exist_ok=True, verbose=False)
                row[f"rect_{rect}".lower()] = {"map50": round(float(r.box.map50), 4),
                                               "map50_95": round(float(r.box.map), 4),
                                               "val_s": round(time.perf_counter() - t, 1)}
                print(f"  {weights.name}: Ultralytics val (rect={rect}) mAP50 {r.box.map50:.4f}, "
                      f"mAP50-95 {r.box.map:.4f}", flush=True)
            # val's NMS keeps several classes per box (multi_label=True), predict's one: the same predictions as
            # val sees, scored by evaluate, isolate the metric code from that difference
            det = Detector.load(weights, "detect")
            with multi_label_nms():
                preds = det.predict(arrays, conf=0.001, imgsz=imgsz, batch=8)
            m = evaluate(preds, truths, names)
            row["evaluate_multi_label_nms"] = {"map50": round(m["map50"], 4), "map50_95": round(m["map50_95"], 4)}
            mine, same = out["models"].get(weights.name, {}), row["rect_false"]
            row["diff_evaluate_minus_val"] = {k: round(mine.get(k, float("nan")) - same[k], 4)
                                              for k in ("map50", "map50_95")}
            row["diff_same_nms"] = {k: round(m[k] - same[k], 4) for k in ("map50", "map50_95")}
            print(f"  {weights.name}: evaluate with val's multi-label NMS mAP50 {m['map50']:.4f}, "
                  f"mAP50-95 {m['map50_95']:.4f}", flush=True)
            out["ultralytics_val"][weights.name] = row
    return out


# --------------------------------------------------------------------------------------------------------------------
# plot


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    lat = result.get("latency") or []
    if lat:
        x = np.arange(len(lat))
        for k, (side, color) in enumerate((("backend", "tab:blue"), ("raw", "tab:orange"))):
            med = [r[side]["median_ms"] for r in lat]
            p90 = [r[side]["p90_ms"] for r in lat]
            ax.bar(x + (k - 0.5) * 0.38, med, 0.38, color=color,
                   label=f"{'/predict (1 task)' if side == 'backend' else 'raw YOLO.predict'} median")
            ax.scatter(x + (k - 0.5) * 0.38, p90, marker="_", s=300, color="black", zorder=3,
                       label="p90" if k == 0 else None)
        for i, r in enumerate(lat):
            ax.text(i, max(r["backend"]["p90_ms"], r["raw"]["p90_ms"]) * 1.03, f"x{r['ratio_of_medians']:.2f}",
                    ha="center", fontsize=9)
        ax.set_xticks(x, [r["weights"] for r in lat])
        ax.set_ylim(0, max(max(r["backend"]["p90_ms"], r["raw"]["p90_ms"]) for r in lat) * 1.15)
        ax.set_ylabel("ms per image")
        ax.set_title("latency per image (backend / raw)")
        ax.legend(fontsize=8)
    ax = axes[0][1]
    for r in result.get("throughput") or []:
        n = [row["tasks_per_request"] for row in r["rows"]]
        line = ax.plot(n, [row["backend_images_per_s"] for row in r["rows"]], marker="o", label=f"/predict {r['weights']}")
        ax.plot(n, [row["raw_images_per_s"] for row in r["rows"]], marker="s", ls="--", color=line[0].get_color(),
                label=f"raw {r['weights']}")
    ax.set_xscale("log", base=2)
    if result.get("throughput"):
        ticks = [row["tasks_per_request"] for row in result["throughput"][0]["rows"]]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(bottom=0)
    ax.set_xlabel("tasks per request (raw: images per call)")
    ax.set_ylabel("images / s")
    ax.set_title("throughput")
    if result.get("throughput"):
        ax.legend(fontsize=8)
    ax = axes[1][0]
    tr = (result.get("training") or {}).get("rows") or []
    if tr:
        labels = [f"imgsz {r['imgsz']}\nbatch {r['batch']}" for r in tr]
        train = [r["train_s_per_epoch_per_100_images"] for r in tr]
        val = [r["val_s_per_epoch_per_100_images"] for r in tr]
        x = np.arange(len(tr))
        ax.bar(x - 0.2, train, 0.4, label="training, per 100 training images")
        ax.bar(x + 0.2, val, 0.4, label="per-epoch validation, per 100 val images")
        for i in range(len(tr)):
            ax.text(i - 0.2, train[i], f"{train[i]:.1f}", ha="center", va="bottom", fontsize=8)
            ax.text(i + 0.2, val[i], f"{val[i]:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, labels)
        ax.set_ylabel("s per epoch per 100 images")
        ax.set_title("fine-tuning yolov8n (freeze 10), CPU")
        ax.legend(fontsize=8)
    ax = axes[1][1]
    mp = result.get("map") or {}
    if mp.get("models"):
        bars = [(f"{w}\nevaluate", m) for w, m in mp["models"].items()]
        for w, row in (mp.get("ultralytics_val") or {}).items():
            bars.append((f"{w}\nevaluate, val's NMS", row["evaluate_multi_label_nms"]))
            bars.append((f"{w}\nUltralytics val", row["rect_false"]))
        x = np.arange(len(bars))
        ax.bar(x - 0.2, [m["map50"] for _, m in bars], 0.4, label="mAP50")
        ax.bar(x + 0.2, [m["map50_95"] for _, m in bars], 0.4, label="mAP50-95")
        ax.set_xticks(x, [b for b, _ in bars], fontsize=7)
        for i, (_, m) in enumerate(bars):
            ax.text(i - 0.2, m["map50"] + 0.01, f"{m['map50']:.3f}", ha="center", fontsize=7)
            ax.text(i + 0.2, m["map50_95"] + 0.01, f"{m['map50_95']:.3f}", ha="center", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(f"coco128 ({mp['images']} images, 80 classes), base weights")
        ax.legend(fontsize=8)
    fig.suptitle(f"detection bench, {result['machine']['cpus']} CPU cores, {result['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------------------------


def machine() -> dict:
    import onnxruntime
    import torch
    import ultralytics

    return {"cpus": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": _cpu_name(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "ultralytics": ultralytics.__version__,
            "onnxruntime": onnxruntime.__version__, "device": "cpu",
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}


def weights_info(path: Path) -> dict:
    """Size, and for an ONNX export its input shape and how it is quantized (which ops it runs)."""
    info: dict = {"file": path.name, "mib": round(path.stat().st_size / 2**20, 2)}
    if path.suffix == ".onnx":
        try:
            from collections import Counter

            import onnx

            m = onnx.load(str(path), load_external_data=False)
            ops = Counter(n.op_type for n in m.graph.node)
            info["input_shape"] = [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]
            info["quantized_ops"] = {k: v for k, v in ops.items()
                                     if "Integer" in k or "Quantize" in k or k.startswith("QLinear")}
        except Exception as e:  # onnx missing or an unexpected graph: the figures do not depend on it
            info["error"] = f"{type(e).__name__}: {e}"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--weights-dir", type=Path, default=Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")))
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "coco128")
    parser.add_argument("--weights", nargs="+", default=["yolov8n.pt", "yolov8n_int8.onnx"],
                        help="weights files in --weights-dir, compared in latency, throughput and mAP")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--latency-images", type=int, default=20)
    parser.add_argument("--conf", type=float, default=0.5, help="score threshold (the backend's default)")
    parser.add_argument("--throughput-images", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--throughput-weights", nargs="+", default=["yolov8n.pt"],
                        help="weights for the throughput part (the int8 ONNX export has a static batch of 1: N only "
                             "changes the number of requests; add it to measure anyway)")
    parser.add_argument("--repeats", type=int, default=1, help="throughput passes; the best is kept")
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--train-configs", nargs="+", default=["320:16", "640:8"], metavar="IMGSZ:BATCH")
    parser.add_argument("--val-check", nargs="*", default=["yolov8n.pt"],
                        help="weights also scored with Ultralytics' model.val (none: skip)")
    parser.add_argument("--val-rect", action="store_true",
                        help="also run model.val with its default rect batches (adds ~40 s)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    names_by_index = coco128_names(args.data.parent)  # --data is the coco128 folder
    names, samples = [names_by_index[i] for i in sorted(names_by_index)], coco128_samples(args.data.parent)
    weights = [args.weights_dir / w for w in args.weights]
    for w in weights:
        if not w.exists():
            parser.error(f"no weights {w}")
    result: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                    "weights": [weights_info(w) for w in weights], "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="detection-bench-") as tmp:
        work = Path(tmp)
        server = Server(work, args.weights_dir, args.data) if {"latency", "throughput"} & set(args.parts) else None
        paths = [s.image for s in samples]
        if "latency" in args.parts:
            print("latency", flush=True)
            t = time.perf_counter()
            result["latency"] = [bench_latency(server, w, names, paths[:args.latency_images], paths[-3:], args.conf)
                                 for w in weights]
            timings["latency"] = time.perf_counter() - t
        if "throughput" in args.parts:
            print("throughput", flush=True)
            t = time.perf_counter()
            result["throughput"] = [bench_throughput(server, args.weights_dir / w, names,
                                                     paths[:args.throughput_images], args.batch_sizes, args.conf,
                                                     args.repeats) for w in args.throughput_weights]
            timings["throughput"] = time.perf_counter() - t
        if "training" in args.parts:
            print("training", flush=True)
            t = time.perf_counter()
            configs = [tuple(int(v) for v in c.split(":")) for c in args.train_configs]
            pt = next((w for w in weights if w.suffix == ".pt"), args.weights_dir / "yolov8n.pt")
            result["training"] = bench_training(samples[:args.train_images], pt, work / "train", configs,
                                                args.train_epochs, 0.2)
            timings["training"] = time.perf_counter() - t
        if "map" in args.parts:
            print("mAP", flush=True)
            t = time.perf_counter()
            result["map"] = bench_map(weights, names, samples, work / "map", 640,
                                      [args.weights_dir / w for w in args.val_check], args.val_rect)
            timings["map"] = time.perf_counter() - t
    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["section_wall_s"] = {k: round(v, 1) for k, v in timings.items()}
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    result["notes"] = NOTES
    (args.out / "detection.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(result, args.out / "detection.png")
    print(f"wrote {args.out / 'detection.json'} and {args.out / 'detection.png'} ({result['total_wall_s']} s)")


NOTES = [
    "CPU only (CUDA_VISIBLE_DEVICES hidden); torch and onnxruntime use their default thread counts.",
    "latency: one task per POST /predict through Flask's test client (in process: no sockets, no HTTP server), with "
    "an absolute local path in the task (a LOCAL_FILES_ROOTS folder): MediaFetcher returns the original file, so "
    "there is no download or media-cache copy to warm. The config lists all 80 COCO classes, so backend and raw "
    "return the same boxes; both use conf 0.5 (the backend's default model_score_threshold) and the model's own "
    "input size (640). Backend and raw calls alternate per image (order swapped every image) so load from other "
    "jobs hits both alike; the first call of each (model load) and two warm-up images are excluded.",
    "backend_breakdown_median_ms splits the request by wrapping adapter methods: flask_json_config = the request "
    "minus the adapter (request/response JSON, config check and weights path resolution, project settings and "
    "version lookup); media_fetch; decode_pil (load_image); ultralytics_predict (YOLO.predict on the decoded "
    "array); detector_glue (RGB->BGR copy, Detection objects, label mapping); regions_json. Medians per part, so "
    "they do not add up exactly to the median total. Raw YOLO.predict(path) decodes with cv2.imread inside.",
    "throughput: the backend runs forward passes in batches of batch_predict=8 (its default) whatever N is; the raw "
    "side calls YOLO.predict on the same N paths with batch=min(N, 8), right before or after each request (order "
    "alternating). A batch of images of different shapes is letterboxed to 640x640, a single image only to the "
    "next multiple of 32 (640x480 for most COCO images). Only yolov8n.pt by default: the int8 ONNX export has a "
    "static batch of 1, so Ultralytics runs it image by image whatever N is.",
    "training: extend_classes(yolov8n.pt -> [person, Vehicle]) + build_dataset (val_fraction 0.2) + finetune "
    "(freeze 10, BatchNorm frozen, deterministic, patience 0). train_s = on_train_epoch_start..on_train_epoch_end; "
    "val_and_save_s = on_train_epoch_end..on_fit_epoch_end (validation of the epoch + saving last/best.pt). "
    "Per-epoch figures are the mean of the epochs after the first (the first is in first_epoch). Not included: "
    "setup (model build, dataloaders, label cache: phases.setup_s) and the final validation of best.pt "
    "(phases.final_val_s). TrainReport.epoch_seconds (training + validation) is kept as report_epoch_seconds.",
    "map: Detector.predict(conf 0.001, imgsz 640, iou 0.7, max_det 300, batches of 8: mixed shapes in a batch are "
    "letterboxed to 640x640) on all 128 images, scored with detection.evaluate over the 80 COCO classes (means over "
    "the classes that have ground truth in coco128). Cross-check: Ultralytics' model.val on the same 128 images "
    "from a build_dataset folder in a temp dir, rect=False (640x640 letterbox; --val-rect adds its default rect "
    "batches). val's NMS is multi-label (a box may count for several classes) where predict's is not, which lifts "
    "val's mAP by about 0.01; evaluate_multi_label_nms scores predictions made with val's NMS, isolating the metric "
    "code (diff_same_nms).",
    "first_call_s of the first weights measured also pays the process's one-time imports and torch set-up on the "
    "backend side (the raw call after it does not).",
    "yolov8n_int8.onnx is dynamically quantized (ConvInteger + DynamicQuantizeLinear, see weights[]) with a static "
    "1x3x640x640 input: onnxruntime has no fast x86 kernel for ConvInteger, every image is letterboxed to 640x640, "
    "and its 2 intra-op threads spin-wait badly when other jobs share the cores. On this CPU it is slower than the "
    "fp32 .pt, at the same mAP.",
    "The development machine is shared with other jobs: timings vary run to run (see load_average_*).",
]


if __name__ == "__main__":
    main()
