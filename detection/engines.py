"""Which engine runs a YOLO box model, and its OpenVINO export: made at first use, cached by the weights' digest.

`auto` serves a detection (box) model loaded from a `.pt` on CPU by its OpenVINO export (`dynamic=True`, so images
keep their own letterboxed size). Segmentation masks stay PyTorch's (their equality was never measured), and an
export named as `model_path` already runs in its own engine.

The export is compiled as Ultralytics does (PERFORMANCE_HINT=LATENCY, synchronous), plus the process's thread budget
(INFERENCE_NUM_THREADS: `torch.get_num_threads()`, which the entry points set from CPU_THREADS) and a precision
(`PRECISIONS`; this module's functions default to float32, the backend's DETECTION_PRECISION to bfloat16).
Measured on 2 cores of an AVX512-BF16 CPU (bench/results/compare.json): in float32 the export gives PyTorch's boxes,
scores and class probabilities (209 of 209 boxes on 40 coco128 photos, scores equal; AP50 0.6127 both) at about
PyTorch's speed on quiet cores; in bfloat16, OpenVINO's own choice on such CPUs, it ran ~1.5x faster at the same AP50
(0.6130) but moved scores by up to 0.04 and changed 11 of those 209 boxes (`detection_openvino_precision`); through
a real Label Studio its stored boxes keep raw PyTorch's AP50 (bench/results/fidelity.json), so the backend serves it.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from export_cache import build_once, sources_digest

from . import runtime

log = logging.getLogger(__name__)

ENGINES = ("auto", "pytorch", "openvino")  # backends/config.py DETECTION_ENGINES names the same (tests check)
OPENVINO_SUFFIX = "_openvino_model"  # Ultralytics recognises an OpenVINO folder by this ending
# part of the cache key with the library versions: changing how the export is made never reuses an old one
RECIPE = "YOLO(pt).export(format='openvino', dynamic=True, half=False); v1"
# "f32": PyTorch's predictions exactly; "bf16": ~1.5x faster where the CPU has it, 5 % of the boxes changed (see
# above; a CPU without bfloat16 runs it in float32). backends/config.py DETECTION_PRECISIONS names the same.
PRECISIONS = ("f32", "bf16")

_warned: set[str] = set()


@dataclass(frozen=True)
class Serving:
    """How a detect `.pt` model is served: `engine` (ENGINES; "auto" picks per `choose_engine`), the folder its
    OpenVINO export is cached in (None: `default_cache_dir()`) and OpenVINO's `precision` (PRECISIONS). The
    default serves with PyTorch. Checked when made: ValueError naming the allowed values."""

    engine: str = "pytorch"
    export_dir: str | Path | None = None
    precision: str = "f32"

    def __post_init__(self):
        object.__setattr__(self, "engine", check_engine(self.engine))
        object.__setattr__(self, "precision", check_precision(self.precision))

    @property
    def cache_dir(self) -> Path:
        return Path(self.export_dir) if self.export_dir else default_cache_dir()


def openvino_available() -> bool:
    """Whether the `openvino` package imports."""
    try:
        importlib.import_module("openvino")
    except Exception:  # missing, or a wheel that does not load here
        return False
    return True


def check_engine(engine: str) -> str:
    """`engine` if it is one of ENGINES ("" means auto).

    Raises:
        ValueError: naming the allowed values.
    """
    engine = (engine or "auto").strip().lower()
    if engine not in ENGINES:
        raise ValueError(f"detection engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return engine


def choose_engine(engine: str, weights: str | Path, task: str, gpu: bool) -> str:
    """The engine that runs `weights`: "openvino" or "pytorch".

    Args:
        engine: "auto" (OpenVINO on CPU), "pytorch", or "openvino" (also on a GPU machine).
        weights: the weights loaded; only a `.pt` file can be exported.
        task: the model's task; only "detect" models are exported.
        gpu: whether PyTorch would predict on a GPU.
    """
    engine = check_engine(engine)
    if engine == "pytorch" or task != "detect" or not str(weights).endswith(".pt") or (engine == "auto" and gpu):
        return "pytorch"
    if not openvino_available():
        if engine == "openvino":
            warn_once("openvino-missing", "DETECTION_ENGINE=openvino, but the openvino package does not import: "
                                          "serving PyTorch")
        return "pytorch"
    return "openvino"


def warn_once(key: str, message: str, *args) -> None:
    """Log a warning the first time `key` comes up in this process."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def default_cache_dir() -> Path:
    """Where exports are cached when the caller names no folder: labelloop's folder of the user's cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelloop" / "detection-openvino"


def recipe() -> str:
    """RECIPE with the versions of Ultralytics and OpenVINO that make the export."""
    import openvino
    import ultralytics

    return f"{RECIPE} ultralytics {ultralytics.__version__} openvino {openvino.__version__}"


def export_path(weights: str | Path, cache_dir: str | Path) -> Path:
    """The folder that holds (or will hold) the OpenVINO export of `weights` in `cache_dir`: named by the content
    alone, so a copy of the file (a version published by copying its weights) finds the same export."""
    digest = sources_digest([Path(weights).resolve()], recipe(), names=False)
    return Path(cache_dir) / f"{digest[:24]}{OPENVINO_SUFFIX}"


def export_openvino(weights: str | Path, cache_dir: str | Path) -> Path:
    """The OpenVINO export of a `.pt` file, made once per content (see `export_cache.build_once`).

    Raises:
        Whatever Ultralytics' export raises.
    """
    weights = Path(weights).resolve()
    target = export_path(weights, cache_dir)

    def build(work: Path) -> Path:
        from ultralytics import YOLO

        log.info("exporting %s to OpenVINO (once; cached in %s)", weights, target)
        link = work / weights.name  # Ultralytics writes the export beside the file it loaded: here, not by the weights
        link.symlink_to(weights)
        runtime.keep_process_threads()  # the exporter's select_device would reset PyTorch's threads
        return Path(YOLO(str(link), task="detect").export(format="openvino", dynamic=True, half=False,
                                                          verbose=False))

    return build_once(target, build)


def prepare_export(weights: str | Path, task: str, serving: Serving) -> Path | None:
    """Make ahead of time the OpenVINO export a server will serve for `weights` (a training job does, once its
    guard accepted them, so that loading the new version does not export).

    Returns:
        The export's folder; None when `serving` serves these weights with PyTorch, or the export failed (logged: a
        server then tries again when it loads them, and serves PyTorch if it fails there too).
    """
    from .model import gpu_available  # model imports this module

    if choose_engine(serving.engine, weights, task, gpu_available()) != "openvino":
        return None
    try:
        return export_openvino(weights, serving.cache_dir)
    except Exception as e:
        log.warning("no OpenVINO export of %s made ahead: %s: %s", weights, type(e).__name__, e)
        return None


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS ("" means f32).

    Raises:
        ValueError: naming the allowed values.
    """
    precision = (precision or PRECISIONS[0]).strip().lower()
    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def compile_for_process(backend, xml: Path, precision: str = "f32") -> None:
    """Compile an Ultralytics OpenVINO backend's model again with the process's threads and `precision`.

    Ultralytics compiles with PERFORMANCE_HINT=LATENCY alone, which takes every core; its later recompiles (per input
    shape, for AMX int8 models) keep these settings too, as they go through `backend.compile_model`.
    """
    import openvino as ov
    import torch

    compile_model = getattr(backend, "compile_model", None)
    if not isinstance(compile_model, functools.partial) or compile_model.keywords.get("device_name") != "CPU":
        return  # another device (AUTO with a GPU, NPU): its own settings
    config = {**compile_model.keywords.get("config", {}), "INFERENCE_NUM_THREADS": torch.get_num_threads(),
              "INFERENCE_PRECISION_HINT": {"f32": ov.Type.f32, "bf16": ov.Type.bf16}[check_precision(precision)]}
    backend.compile_model = functools.partial(compile_model.func, device_name="CPU", config=config)
    core = compile_model.func.__self__
    backend.ov_compiled_model = backend.compile_model(core.read_model(str(xml), str(xml.with_suffix(".bin"))))


@functools.lru_cache(maxsize=None)
def openvino_predictors(precision: str = "f32") -> tuple[type, type]:
    """Ultralytics' detection predictor and `ClassProbsPredictor`, each compiling an OpenVINO export for this
    process in `precision` (`compile_for_process`) when it sets the model up: (plain, with class probabilities)."""
    from ultralytics.models.yolo.detect import DetectionPredictor

    from .class_probs import ClassProbsPredictor

    class ForProcess:
        def setup_model(self, model, verbose: bool = True):
            super().setup_model(model, verbose)
            folder = Path(str(model or self.args.model))
            compile_for_process(self.model.backend, folder if folder.suffix == ".xml" else next(folder.glob("*.xml")),
                                precision)

    return (type("OpenVINOPredictor", (ForProcess, DetectionPredictor), {}),
            type("OpenVINOClassProbsPredictor", (ForProcess, ClassProbsPredictor), {}))
