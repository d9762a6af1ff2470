"""A YOLO model behind one small interface: batches of RGB images in, `Detection`s in original pixels out."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import engines, runtime  # runtime: offline-safe Ultralytics settings, before ultralytics is imported
from .types import Detection

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The weights could not be loaded (missing and not downloadable, or not a YOLO model)."""


def _task_from_name(weights: str) -> str | None:
    stem = Path(weights).name.lower()
    return "segment" if "-seg" in stem or "_seg" in stem else None


def _end2end(yolo) -> bool:
    """Whether a model's head gives final boxes itself (YOLOv10/26), without the NMS class probabilities need."""
    return bool(getattr(getattr(yolo, "model", None), "end2end", False))


class Detector:
    """A loaded YOLO detection or segmentation model.

    Ultralytics' predictor keeps per-call state, so calls on one Detector are serialised.

    Args:
        yolo: the model that predicts (a PyTorch one, or an export).
        source: the weights it was loaded from (for an OpenVINO export made here: the `.pt` file).
        engine: "pytorch", or "openvino" for an export made by `engines.export_openvino`.
        class_probs: whether the model gives class probabilities (None: from `yolo`, a detect model whose head NMS
            follows).
        names: the class names (None: `yolo.names`, which for an export sets up and compiles a throw-away
            predictor).
        precision: an OpenVINO engine's, `engines.PRECISIONS`.
    """

    def __init__(self, yolo, source: str, engine: str = "pytorch", class_probs: bool | None = None,
                 names: dict | list | None = None, precision: str = "f32"):
        self.yolo = yolo
        self.source = source
        self.engine = engine
        self.task: str = yolo.task
        if names is None:
            runtime.keep_process_threads()  # an export's names set a predictor up: its select_device sets threads
            names = yolo.names
        self.names: list[str] = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
        self._lock = threading.Lock()
        # class probabilities come from the raw head output that NMS filters: detection models whose head NMS
        # follows (not end-to-end ones); turned off for good after the first failure
        self._class_probs = self.task == "detect" and not _end2end(yolo) if class_probs is None else class_probs
        # the predictor classes: Ultralytics' own for PyTorch (None), ones compiling for this process for OpenVINO
        self._plain, self._with_probs = engines.openvino_predictors(precision) if engine == "openvino" else (None, None)
        self._embedder = None if engine == "openvino" else yolo  # an export has no layers to pool: the .pt, lazily

    @classmethod
    def load(cls, weights: str | Path, task: str | None = None,
             serving: engines.Serving = engines.Serving()) -> "Detector":
        """Load `weights` (.pt, .onnx, OpenVINO folder, ...; a bare known name is downloaded by Ultralytics).

        Args:
            task: "detect" or "segment"; exported formats do not always say which, so it is guessed from a
                "-seg" in the name when not given.
            serving: the engine, export folder and precision (`engines.Serving`; PyTorch by default): a detect
                `.pt` model can be served by its OpenVINO export, made on first use into the export folder and
                reused after; when that fails, a warning is logged once and PyTorch serves. OpenVINO's precision
                is "f32" (PyTorch's predictions) or "bf16" (faster on CPUs that have it).

        Raises:
            ModelLoadError: saying which weights and why.
            ValueError: an unknown engine.
        """
        from ultralytics import YOLO

        weights = str(weights)
        try:
            yolo = YOLO(weights, task=task or _task_from_name(weights))
            if yolo.task not in ("detect", "segment"):
                raise ModelLoadError(f"{weights} is a {yolo.task} model; detection needs detect or segment weights")
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"cannot load YOLO weights {weights!r}: {type(e).__name__}: {e}") from None
        if engines.choose_engine(serving.engine, weights, yolo.task, gpu_available()) == "openvino":
            served = cls._openvino(weights, serving, not _end2end(yolo), yolo.names)
            if served is not None:
                return served
        return cls(yolo, weights)

    @classmethod
    def _openvino(cls, weights: str, serving: engines.Serving, class_probs: bool,
                  names: dict) -> "Detector | None":
        """The OpenVINO export of detect `.pt` weights, compiled and run once; None (a warning logged once per
        weights) when exporting or loading it fails."""
        from ultralytics import YOLO

        try:
            folder = engines.export_openvino(weights, serving.cache_dir)
            detector = cls(YOLO(str(folder), task="detect"), weights, "openvino", class_probs, names,
                           serving.precision)
            detector.predict([np.zeros((64, 64, 3), dtype=np.uint8)])  # compiled now, not in the first request
            return detector
        except Exception as e:
            engines.warn_once(f"export:{weights}", "serving %s with PyTorch: its OpenVINO export failed: %s: %s",
                              weights, type(e).__name__, e)
            return None

    def class_indices(self, classes: Sequence[str]) -> list[int]:
        index = {n: i for i, n in enumerate(self.names)}
        return [index[c] for c in classes if c in index]

    def predict(self, images: Sequence[np.ndarray], conf: float = 0.25, classes: Sequence[str] | None = None,
                imgsz: int | None = None, batch: int = 8, iou: float = 0.7,
                max_det: int = 300) -> list[list[Detection]]:
        """Detect objects in a batch of images.

        Args:
            images: RGB uint8 arrays (H, W, 3).
            conf: minimum score.
            classes: model class names to keep; None keeps all, an empty list keeps none.
            imgsz: inference size; None uses the model's own (640 for .pt, the export size for .onnx).
            batch: images per forward pass.

        Returns:
            Per image, its detections (highest score first) in pixels of that image; polygons for segment models,
            class probabilities (over `classes`, in that order; all the model's classes without) for detect models.
        """
        if not images:
            return []
        if classes is not None and not classes:
            return [[] for _ in images]
        idx = None if classes is None else self.class_indices(classes)
        if idx is not None and not idx:
            return [[] for _ in images]
        kwargs = dict(conf=conf, iou=iou, max_det=max_det, classes=idx, batch=max(1, batch), verbose=False)
        if imgsz:
            kwargs["imgsz"] = imgsz
        # Ultralytics reads numpy images as OpenCV BGR (cvtColor: ~20x faster than a reversed-axis copy)
        bgr = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR) for im in images]
        columns = list(range(len(self.names))) if idx is None else idx
        with self._lock:
            runtime.keep_process_threads()
            try:
                return self._predict(bgr, batch, kwargs, columns)
            finally:
                self._release()

    def _predict(self, bgr: list[np.ndarray], batch: int, kwargs: dict, columns: list[int]) -> list[list[Detection]]:
        """`predict`'s batches, with class probabilities while the model gives them (the lock held)."""
        def run(predictor=None) -> list[list[Detection]]:
            extra = {"predictor": predictor} if predictor is not None else {}
            return [self._detections(r, columns) for start in range(0, len(bgr), max(1, batch))
                    for r in self.yolo.predict(bgr[start:start + batch], **kwargs, **extra)]

        if not self._class_probs:
            return run(self._plain)
        from .class_probs import ClassProbsPredictor

        try:
            return run(self._with_probs or ClassProbsPredictor)
        except Exception:
            self.yolo.predictor = None  # the stock predictor again
            found = run(self._plain)  # fails too: the images are at fault, not the predictor
            # a head whose raw output ClassProbsPredictor does not know: no class probabilities from now on
            log.warning("%s gives no class probabilities; predicting without", self.source, exc_info=True)
            self._class_probs = False
            return found

    def embed(self, images: Sequence[np.ndarray], imgsz: int | None = None, batch: int = 8) -> np.ndarray:
        """(n, dim) float32 L2-normalised image features: the last backbone/neck layer before the head,
        average-pooled (Ultralytics' `YOLO.embed`); 256 values a vector for yolov8n.

        Args:
            images: RGB uint8 arrays (H, W, 3).
        """
        if not images:
            return np.zeros((0, 0), dtype=np.float32)
        kwargs = dict(verbose=False, batch=max(1, batch), **({"imgsz": imgsz} if imgsz else {}))
        bgr = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR) for im in images]
        out = []
        with self._lock:
            runtime.keep_process_threads()
            if self._embedder is None:
                from ultralytics import YOLO

                self._embedder = YOLO(self.source, task=self.task)
            try:
                for start in range(0, len(bgr), max(1, batch)):
                    out += [v.detach().cpu().numpy().astype(np.float32).ravel()
                            for v in self._embedder.embed(bgr[start:start + batch], **kwargs)]
            finally:
                self._release()
        vectors = np.stack(out)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _release(self) -> None:
        for yolo in {id(m): m for m in (self.yolo, self._embedder) if m is not None}.values():
            predictor = getattr(yolo, "predictor", None)
            if predictor is not None:  # it keeps the last batch's images and results until the next call
                predictor.batch = predictor.results = predictor.dataset = None

    def _detections(self, r, columns: list[int]) -> list[Detection]:
        boxes = r.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy().astype(float)
        scores = boxes.conf.cpu().numpy().astype(float)
        cls = boxes.cls.cpu().numpy().astype(int)
        polys = r.masks.xy if getattr(r, "masks", None) is not None else None
        feats = getattr(r, "feats", None)
        probs = np.asarray(feats, dtype=float)[:, columns] if isinstance(feats, np.ndarray) and \
            feats.shape == (len(scores), len(self.names)) else None
        found = [Detection(cls=self.names[c], score=float(s), xyxy=tuple(float(v) for v in b),
                           polygon=np.asarray(polys[i], dtype=float) if polys is not None else None,
                           class_probs=probs[i] if probs is not None else None)
                 for i, (b, s, c) in enumerate(zip(xyxy, scores, cls))]
        found.sort(key=lambda d: -d.score)
        return found


def gpu_available() -> bool:
    """Whether Ultralytics predicts on a GPU here (its default device: the first CUDA device when there is one)."""
    import torch

    return torch.cuda.is_available()
