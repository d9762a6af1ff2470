"""labelloop's HTTP path against the raw library calls and the official Label Studio ML backend example, side by
side: the sides alternate round by round on the same machine and each round's ratios are kept, so that load from
other processes (which moves absolute times by 2x on shared cores) cancels out as far as it can.

    .venv/bin/python -m bench.compare --part detection             # ~15 min on 2 busy cores (load 8-10)
    .venv/bin/python -m bench.compare --part detection_engines     # PyTorch / ONNX Runtime / OpenVINO: speed, AP50

Writes bench/results/compare.json: per part its sides (images/s per round, median), ratios per round and their
median, the goals and whether they are met, the load average at start and end; other parts' sections are kept.
A part is one function in PARTS (args -> dict); add a backend by adding one.

detection (yolov8n, the first --tasks coco128 images, mixed shapes, served by a local HTTP server so that every
side that fetches really fetches; each round uses new URLs, so no media cache answers):
- labelloop: POST /predict (Flask test client, the real app, its default DETECTION_ENGINE: on CPU the weights'
  OpenVINO export, exported into .cache/bench/openvino before the timed rounds) with one task per request, and
  with all tasks in one;
- raw: `YOLO.predict(path)` one image at a time from the local files, and `YOLO.predict(paths, batch=8)`;
- official: label-studio-ml-backend's examples/yolo (`YOLO.predict` of its model.py, RectangleLabelsModel:
  `get_local_path` download, one `model.predict(path)` per task, its region conversion), imported from a copy of
  that repository (--official; see `official_example`), one task per call and all tasks in one call.
Every side uses the same weights, the same confidence (0.25) and all 80 COCO classes, and the same thread count
(labelloop's CPU_THREADS, OpenVINO's included; Ultralytics is kept from changing PyTorch's). The raw and official
sides stay PyTorch: they are the references.

detection_cold_start: the first `Detector.load` of yolov8n.pt and its first prediction in a new process, PyTorch
against OpenVINO with an empty export cache (the export made) and with the cached export, alternated.
"""
from __future__ import annotations

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before detection / ultralytics are imported
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU serving is what is compared

import argparse  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / ".cache" / "bench"  # exports and the official example's copy: never committed
CONF = 0.25  # Ultralytics' default confidence, the official example's model.predict
GOALS = {"many_vs_official": 1.5, "many_vs_raw_loop": 1.3, "one_vs_raw_max": 1.05}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would drown the bench's output
        pass


def serve_folder(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """A local HTTP server over `folder`: (the server, its base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def machine(threads: int) -> dict:
    import torch
    import ultralytics

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpus": len(os.sched_getaffinity(0)), "processor": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "ultralytics": ultralytics.__version__,
            "threads": threads, "device": "cpu"}


def timed(fn: Callable[[], int]) -> float:
    """Images per second of one call of `fn` (which returns how many images it did)."""
    t = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t)


def alternate(sides: dict[str, Callable[[int], int]], rounds: int) -> dict[str, list[float]]:
    """Images/s of every side, round by round; the order of the sides rotates from one round to the next."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            out[name].append(round(timed(lambda: sides[name](r)), 3))
            print(f"  round {r + 1}: {name} {out[name][-1]:.2f} images/s (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    return out


def ratios(rates: dict[str, list[float]], a: str, b: str) -> dict:
    """a's images/s over b's, round by round (the two ran minutes apart at most) and their median."""
    per_round = [round(x / y, 3) for x, y in zip(rates[a], rates[b])]
    return {"per_round": per_round, "median": round(statistics.median(per_round), 3)}


# --------------------------------------------------------------------------------------------------------------------
# detection: the official example


def official_example(checkout: Path, weights: Path, work: Path):
    """The example's `YOLO` class (label_studio_ml/examples/yolo/model.py), imported from a copy of
    label-studio-ml-backend (`git clone https://github.com/HumanSignal/label-studio-ml-backend`).

    Two things keep it from importing offline, both worked around without touching its predict path: each of its
    control-model modules loads its default weights when imported (yolov8m.pt, yolov8n-cls.pt, -obb, -pose: not
    here), so the ones a box config never uses are replaced by classes that match no control, and the box model's
    default name yolov8m.pt is a link to the compared `weights` in its MODEL_ROOT (the config names it, so the same
    weights run on every side). It needs `semver` and `colorama` (bench/requirements.txt).
    """
    example = checkout / "label_studio_ml" / "examples" / "yolo"
    models = work / "official-models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "yolov8m.pt").symlink_to(weights.resolve())
    os.environ["MODEL_ROOT"] = str(models)
    os.environ.setdefault("MODEL_DIR", str(work / "official-cache"))
    # by file, as packages of their own (the example imports `control_models...` and `label_studio_ml...` as if
    # both were on the path)
    _load_package("label_studio_ml", checkout / "label_studio_ml")
    _load_package("control_models", example / "control_models")
    for name, cls in (("choices", "ChoicesModel"), ("rectangle_labels_obb", "RectangleLabelsObbModel"),
                      ("polygon_labels", "PolygonLabelsModel"), ("brush_labels", "BrushLabelsModel"),
                      ("keypoint_labels", "KeypointLabelsModel"), ("video_rectangle", "VideoRectangleModel"),
                      ("timeline_labels", "TimelineLabelsModel")):
        module = types.ModuleType(f"control_models.{name}")
        setattr(module, cls, type(cls, (), {"type": cls, "is_control_matched": classmethod(lambda c, ctl: False)}))
        sys.modules[module.__name__] = module
    return _load_module("label_studio_ml_yolo_example", example / "model.py").YOLO


def _load_module(name: str, path: Path, package_dir: Path | None = None) -> types.ModuleType:
    """The module (or package, with `package_dir`) in file `path`, imported under `name`."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_dir)] if package_dir else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_package(name: str, folder: Path) -> types.ModuleType:
    return _load_module(name, folder / "__init__.py", folder)


def coco_config(names: list[str], model_path: str | None = None) -> str:
    """Boxes for all COCO classes, labels named as the model's classes (both backends map them by name)."""
    labels = "".join(f'<Label value="{n}"/>' for n in names)
    path = f' model_path="{model_path}"' if model_path else ""
    return (f'<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image"{path} '
            f'model_score_threshold="{CONF}">{labels}</RectangleLabels></View>')


# --------------------------------------------------------------------------------------------------------------------
# detection: the sides


def detection_sides(paths: list[Path], base_url: str, weights: Path, work: Path, checkout: Path | None,
                    names: list[str]) -> tuple[dict[str, Callable[[int], int]], dict]:
    """Every side as a function of the round (which makes its URLs new) returning the images it predicted."""
    from ultralytics import YOLO

    from backends.app import create_app
    from backends.config import Settings

    settings = Settings(model_dir=work / "models", weights_dir=weights.parent, media_cache_dir=work / "media",
                        allowed_hosts=("127.0.0.1",), log_level="WARNING", detection_export_dir=CACHE / "openvino")
    app = create_app("detection", settings)
    client = app.test_client()
    config = coco_config(names)

    def tasks(r: int, side: str) -> list[dict]:
        return [{"id": i + 1, "data": {"image": f"{base_url}/{p.name}?round={r}&side={side}"}}
                for i, p in enumerate(paths)]

    def labelloop(r: int, side: str, per_request: int) -> int:
        all_tasks = tasks(r, side)
        for start in range(0, len(all_tasks), per_request):
            resp = client.post("/predict", json={"tasks": all_tasks[start:start + per_request], "project": "1.1",
                                                 "label_config": config})
            assert resp.status_code == 200 and all("error" not in a for a in resp.json["results"]), resp.json
        return len(all_tasks)

    raw = YOLO(str(weights))
    sides: dict[str, Callable[[int], int]] = {
        "labelloop_one_task": lambda r: labelloop(r, "one", 1),
        "labelloop_all_tasks": lambda r: labelloop(r, "all", len(paths)),
        "raw_loop": lambda r: sum(len(raw.predict(str(p), conf=CONF, verbose=False)) for p in paths),
        "raw_batch": lambda r: len(raw.predict([str(p) for p in paths], conf=CONF, batch=8, verbose=False)),
    }
    how = {"official": "not run (no checkout given)"}
    if checkout is not None:
        backend = official_example(checkout, weights, work)(project_id="1", label_config=coco_config(names,
                                                                                                    "yolov8m.pt"))

        def official(r: int, side: str, per_call: int) -> int:
            all_tasks = tasks(r, side)
            for start in range(0, len(all_tasks), per_call):
                answer = backend.predict(all_tasks[start:start + per_call])
                assert len(answer.predictions) == len(all_tasks[start:start + per_call])
            return len(all_tasks)

        sides["official_one_task"] = lambda r: official(r, "official-one", 1)
        sides["official_all_tasks"] = lambda r: official(r, "official-all", len(paths))
        how = {"official": f"label-studio-ml-backend examples/yolo, imported from {checkout.name} (its predict, "
                           "in process, no Flask; see bench/compare.py official_example)"}
    # warm-up: models loaded, first-call costs paid
    for fn in sides.values():
        fn(-1)
    how["labelloop_engine"] = sorted({d.engine for d in app.config["BACKEND"].pool.loaded.values()})
    return sides, how


def detection(args) -> dict:
    from backends.threads import apply_threads, thread_budget
    from ops.sample_data import coco128_names

    threads = apply_threads(thread_budget())
    from detection.runtime import keep_process_threads

    keep_process_threads()  # every side, the raw and official ones included, keeps the budget
    load_start = [round(v, 2) for v in os.getloadavg()]
    images = SHARED / "datasets" / "coco128" / "images" / "train2017"
    paths = sorted(images.glob("*.jpg"))[:args.tasks]
    names = list(coco128_names(SHARED / "datasets").values())
    weights = Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")) / "yolov8n.pt"
    checkout = Path(args.official) if args.official and Path(args.official).is_dir() else None
    server, base_url = serve_folder(images)
    with tempfile.TemporaryDirectory() as tmp:
        sides, how = detection_sides(paths, base_url, weights, Path(tmp), checkout, names)
        rates = alternate(sides, args.rounds)
        out = {"machine": machine(threads), "load_average_start": load_start, "weights": weights.name,
               "images": len(paths), "shapes": sorted({_shape(p) for p in paths}), "conf": CONF,
               "rounds": args.rounds, **how, "images_per_s": rates,
               "median_images_per_s": {k: round(statistics.median(v), 3) for k, v in rates.items()},
               "ratios": {"all_tasks_vs_raw_loop": ratios(rates, "labelloop_all_tasks", "raw_loop"),
                          "all_tasks_vs_raw_batch": ratios(rates, "labelloop_all_tasks", "raw_batch"),
                          # time per image: raw's images/s over labelloop's
                          "one_task_time_vs_raw_loop": ratios(rates, "raw_loop", "labelloop_one_task")}}
        if checkout is not None:
            out["ratios"]["all_tasks_vs_official"] = ratios(rates, "labelloop_all_tasks", "official_all_tasks")
            out["ratios"]["one_task_vs_official"] = ratios(rates, "labelloop_one_task", "official_one_task")
    server.shutdown()
    out["goals"] = goals(out["ratios"])
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return out


def _shape(path: Path) -> str:
    from detection.images import image_size

    w, h = image_size(path)
    return f"{w}x{h}"


def goals(r: dict) -> dict:
    """Issue 16's goals against the medians of the per-round ratios."""
    out = {"all_tasks_vs_raw_loop": {"goal": GOALS["many_vs_raw_loop"],
                                     "measured": r["all_tasks_vs_raw_loop"]["median"]},
           "one_task_time_vs_raw_loop": {"goal_max": GOALS["one_vs_raw_max"],
                                         "measured": r["one_task_time_vs_raw_loop"]["median"]}}
    out["all_tasks_vs_raw_loop"]["met"] = out["all_tasks_vs_raw_loop"]["measured"] >= GOALS["many_vs_raw_loop"]
    out["one_task_time_vs_raw_loop"]["met"] = out["one_task_time_vs_raw_loop"]["measured"] <= GOALS["one_vs_raw_max"]
    if "all_tasks_vs_official" in r:
        m = r["all_tasks_vs_official"]["median"]
        out["all_tasks_vs_official"] = {"goal": GOALS["many_vs_official"], "measured": m,
                                        "met": m >= GOALS["many_vs_official"]}
    return out


# --------------------------------------------------------------------------------------------------------------------
# detection: inference engines


def export(weights: Path, fmt: str) -> Path:
    """`weights` exported by Ultralytics into CACHE (once): dynamic input shapes, so that images keep their own
    letterboxed size as with PyTorch."""
    from ultralytics import YOLO

    folder = CACHE / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / weights.name
    if not source.exists():  # a copy: the backend refuses links out of its weights folder
        shutil.copyfile(weights, source)
    target = folder / (f"{weights.stem}.onnx" if fmt == "onnx" else f"{weights.stem}_openvino_model")
    if not target.exists():
        YOLO(str(source)).export(format=fmt, dynamic=True, verbose=False)
    return target


def one_by_one(detector, arrays: list, _round: int) -> int:
    """`detector` over `arrays` one image at a time: how many."""
    for a in arrays:
        detector.predict([a], conf=CONF, batch=1)
    return len(arrays)


def engines(args) -> dict:
    """PyTorch, ONNX Runtime and OpenVINO (Ultralytics' exports of the same weights, dynamic shapes): images/s of
    labelloop's `Detector` one image at a time and of a /predict of all tasks, alternated; AP50 on all 128 coco128
    images (conf 0.001, `detection.evaluate`).

    OpenVINO twice: as labelloop serves it (`DETECTION_ENGINE` openvino/auto: float32, the thread budget) and as
    Ultralytics compiles an export named as `model_path` (PERFORMANCE_HINT=LATENCY alone: OpenVINO's own precision,
    bfloat16 on CPUs with AVX512-BF16 or AMX)."""
    from backends.app import create_app
    from backends.config import Settings
    from backends.threads import apply_threads, thread_budget
    from detection.evaluate import evaluate
    from detection.engines import Serving
    from detection.images import load_image
    from detection.model import Detector
    from ops.sample_data import coco128_names, coco128_samples

    threads = apply_threads(thread_budget())
    load_start = [round(v, 2) for v in os.getloadavg()]
    weights = Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")) / "yolov8n.pt"
    names = list(coco128_names(SHARED / "datasets").values())
    paths = sorted((SHARED / "datasets" / "coco128" / "images" / "train2017").glob("*.jpg"))[:args.tasks]
    found = {"pytorch": weights, "onnxruntime": export(weights, "onnx"),
             "openvino_ultralytics": export(weights, "openvino")}
    from detection.runtime import keep_process_threads

    apply_threads(threads)  # an export runs Ultralytics' select_device, which sets PyTorch to cores - 1
    keep_process_threads()
    detectors = {k: Detector.load(v, "detect") for k, v in found.items()}
    detectors["openvino"] = Detector.load(CACHE / "exports" / weights.name, "detect",
                                         Serving("openvino", CACHE / "openvino"))
    assert detectors["openvino"].engine == "openvino"
    arrays = [load_image(p) for p in paths]
    settings = Settings(model_dir=CACHE / "models", weights_dir=CACHE / "exports", media_cache_dir=CACHE / "media",
                        local_roots=(paths[0].parent,), log_level="WARNING", detection_export_dir=CACHE / "openvino")
    clients = {engine: create_app("detection", settings.with_overrides(detection_engine=engine)).test_client()
               for engine in ("pytorch", "openvino")}
    tasks = [{"id": i + 1, "data": {"image": str(p)}} for i, p in enumerate(paths)]

    def served(engine: str, model_path: str) -> int:
        resp = clients[engine].post("/predict", json={"tasks": tasks, "project": "1.1",
                                                      "label_config": coco_config(names, model_path)})
        assert resp.status_code == 200 and all("error" not in a for a in resp.json["results"]), resp.json
        return len(tasks)

    sides = {f"detector_{k}": functools.partial(one_by_one, d, arrays) for k, d in detectors.items()}
    sides.update({"labelloop_all_tasks_pytorch": lambda r: served("pytorch", weights.name),
                  "labelloop_all_tasks_openvino": lambda r: served("openvino", weights.name),
                  "labelloop_all_tasks_openvino_ultralytics": lambda r: served(
                      "pytorch", found["openvino_ultralytics"].name)})
    for fn in sides.values():
        fn(-1)
    rates = alternate(sides, args.rounds)
    samples = coco128_samples(SHARED / "datasets")
    quality = {}
    for k, d in detectors.items():
        preds = [d.predict([load_image(s.image)], conf=0.001)[0] for s in samples]
        m = evaluate(preds, [s.boxes for s in samples], names)
        quality[k] = {"map50": round(m["map50"], 4), "map50_95": round(m["map50_95"], 4)}
        print(f"  {k}: AP50 {m['map50']:.4f}", flush=True)
    return {"machine": machine(threads), "load_average_start": load_start, "images": len(paths),
            "threads": "PyTorch: the budget; ONNX Runtime: its default intra-op pool (physical cores); OpenVINO as "
                       "labelloop serves it: the budget, float32; openvino_ultralytics: Ultralytics' "
                       "PERFORMANCE_HINT=LATENCY alone (all cores, OpenVINO's own precision)",
            "precision_openvino_ultralytics": str(_precision(detectors["openvino_ultralytics"])),
            "images_per_s": rates, "median_images_per_s": {k: round(statistics.median(v), 3) for k, v in rates.items()},
            "vs_pytorch": {**{f"detector_{k}": ratios(rates, f"detector_{k}", "detector_pytorch")
                              for k in detectors if k != "pytorch"},
                           **{f"labelloop_all_tasks_{k}": ratios(rates, f"labelloop_all_tasks_{k}",
                                                                 "labelloop_all_tasks_pytorch")
                              for k in ("openvino", "openvino_ultralytics")}},
            "coco128_all_128": quality, "load_average_end": [round(v, 2) for v in os.getloadavg()]}


def _precision(detector) -> object:
    """The inference precision an OpenVINO detector was compiled with (after its first prediction)."""
    return detector.yolo.predictor.model.backend.ov_compiled_model.get_property("INFERENCE_PRECISION_HINT")


def _load_seconds(weights: Path, engine: str, export_dir: Path, image: Path) -> float:
    """Seconds of the first `Detector.load` and its first prediction (`image`) in a new process (labelloop's and
    Ultralytics' imports not counted; what they import lazily, such as torchvision at the first prediction, and
    OpenVINO, which only its engine needs, counted)."""
    code = ("import sys, time\nfrom ultralytics import YOLO\nfrom detection.images import load_image\n"
            "from detection.engines import Serving\nfrom detection.model import Detector\n"
            "image = load_image(sys.argv[4])\nt = time.perf_counter()\n"
            "d = Detector.load(sys.argv[1], 'detect', Serving(sys.argv[2], sys.argv[3]))\nd.predict([image])\n"
            "assert d.engine == sys.argv[2], d.engine\nprint(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code, str(weights), engine, str(export_dir), str(image)], cwd=ROOT,
                         check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return float(out.stdout.strip().splitlines()[-1])


def cold_start(args) -> dict:
    """The first load of yolov8n.pt in a new process: PyTorch, OpenVINO exporting into an empty cache, OpenVINO from
    the cache; alternated, `--rounds` rounds."""
    from backends.threads import apply_threads, thread_budget

    threads = apply_threads(thread_budget())
    load_start = [round(v, 2) for v in os.getloadavg()]
    weights = Path(os.environ.get("WEIGHTS_DIR", SHARED / "models")) / "yolov8n.pt"
    image = sorted((SHARED / "datasets" / "coco128" / "images" / "train2017").glob("*.jpg"))[0]
    seconds: dict[str, list[float]] = {"pytorch": [], "openvino_export": [], "openvino_cached": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            empty = Path(tmp) / f"round-{r}"
            seconds["pytorch"].append(_load_seconds(weights, "pytorch", empty, image))
            seconds["openvino_export"].append(_load_seconds(weights, "openvino", empty, image))
            seconds["openvino_cached"].append(_load_seconds(weights, "openvino", empty, image))
    rounded = {k: [round(v, 2) for v in vs] for k, vs in seconds.items()}
    return {"machine": machine(threads), "load_average_start": load_start, "weights": weights.name,
            "what": "seconds of the first Detector.load and its first prediction (one coco128 photo) in a new "
                    "process (labelloop's and Ultralytics' imports excluded, what they import lazily counted); "
                    "OpenVINO's include importing openvino, hashing the .pt and compiling; openvino_export also "
                    "the export itself",
            "seconds": rounded, "median_seconds": {k: round(statistics.median(v), 2) for k, v in seconds.items()},
            "load_average_end": [round(v, 2) for v in os.getloadavg()]}


PARTS: dict[str, Callable] = {"detection": detection, "detection_engines": engines, "detection_cold_start": cold_start}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=sorted(PARTS), action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=20, help="images (tasks) per many-task request")
    ap.add_argument("--official", default=str(CACHE / "label-studio-ml-backend"),
                    help="a copy of label-studio-ml-backend (skipped when missing)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "compare.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    for part in args.part:
        print(f"{part}:", flush=True)
        result[part] = PARTS[part](args)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({p: result[p].get("goals") or result[p].get("vs_pytorch") for p in args.part}, indent=1))


if __name__ == "__main__":
    main()
