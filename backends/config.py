"""Settings read from the environment, with Label Studio's own variable names where one exists."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

import selection

from .threads import thread_budget

DEFAULT_PORT = {"text_cls": 9090, "detection": 9091, "segmentation": 9092, "asr": 9093, "ner": 9094, "image_cls": 9095,
                "ocr": 9096, "keypoints": 9097}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())


# text_cls.encoder.ENGINES, named here so reading the settings does not import PyTorch (tests check they agree)
TEXT_ENCODERS = ("onnx-int8", "torch")


def _text_encoder(raw: str) -> str:
    """TEXT_ENCODER's engine (the first of TEXT_ENCODERS when empty), or a ValueError naming the variable."""
    name = raw.strip() or TEXT_ENCODERS[0]
    if name not in TEXT_ENCODERS:
        raise ValueError(f"TEXT_ENCODER must be one of {', '.join(TEXT_ENCODERS)}; got {raw.strip()!r}")
    return name


# detection.engines.ENGINES and PRECISIONS, named here so reading the settings does not import Ultralytics (tests
# check they agree)
DETECTION_ENGINES = ("auto", "pytorch", "openvino")
DETECTION_PRECISIONS = ("f32", "bf16")
# OpenVINO's own choice on a CPU with bfloat16 (a CPU without it runs float32): through a real Label Studio the
# stored boxes keep raw PyTorch's AP50 (0.5586 on 32 held-out coco128 images; fidelity.json) and a 20-task request
# runs 2.0x the raw loop (compare.json detection_openvino_precision); f32 gives PyTorch's boxes exactly, ~1.5x slower
DEFAULT_DETECTION_PRECISION = "bf16"


def _detection_engine(raw: str) -> str:
    """DETECTION_ENGINE's engine (auto when empty), or a ValueError naming the variable."""
    name = raw.strip().lower() or DETECTION_ENGINES[0]
    if name not in DETECTION_ENGINES:
        raise ValueError(f"DETECTION_ENGINE must be one of {', '.join(DETECTION_ENGINES)}; got {raw.strip()!r}")
    return name


def _detection_precision(raw: str) -> str:
    """DETECTION_PRECISION (bf16 when empty), or a ValueError naming the variable."""
    name = raw.strip().lower() or DEFAULT_DETECTION_PRECISION
    if name not in DETECTION_PRECISIONS:
        raise ValueError(f"DETECTION_PRECISION must be one of {', '.join(DETECTION_PRECISIONS)}; got "
                         f"{raw.strip()!r}")
    return name


def _strategy(raw: str) -> str:
    """A known selection strategy's name (the default when empty), or a ValueError naming the variable."""
    try:
        return selection.get(raw.strip() or selection.DEFAULT).name
    except selection.UnknownStrategy as e:
        raise ValueError(f"UNCERTAINTY_STRATEGY: {e}") from None


@dataclass(frozen=True)
class Settings:
    """Everything a backend process is configured with.

    Secrets (`api_key`, `basic_auth_pass`) are excluded from `repr` so they never reach a log line.
    """

    label_studio_url: str = ""
    api_key: str = field(default="", repr=False)
    basic_auth_user: str = ""
    basic_auth_pass: str = field(default="", repr=False)
    model_dir: Path = Path("var/models")
    weights_dir: Path | None = None
    redis_url: str = field(default="", repr=False)
    log_level: str = "INFO"
    cpu_threads: int = 1  # threads for PyTorch, CTranslate2 and onnxruntime in this process (backends/threads.py)
    # media access
    media_cache_dir: Path = Path("var/media-cache")
    media_cache_bytes: int = 1 << 30
    max_media_bytes: int = 200 << 20
    allowed_hosts: tuple[str, ...] = ()
    local_roots: tuple[Path, ...] = ()
    media_timeout: float = 30.0
    media_deadline: float = 300.0
    max_image_pixels: int = 100_000_000  # larger images are refused before decoding (decompression bombs)
    # requests: 20 MiB is 1,000 tasks of 20 KiB each; a config with more labels is refused (parsing and encoding
    # 10,000 of them held a model for 35 s)
    max_request_bytes: int = 20 << 20
    max_labels: int = 1000
    # detection and segmentation models
    allowed_weights: tuple[str, ...] = ()  # patterns of WEIGHTS_DIR names a label config may load; () = yolo*
    max_request_pixels: int = 1_000_000_000  # pixels one /predict may decode over all its images
    sam_model: str = ""  # SAM kind: vit_t (default), vit_b, vit_l, vit_h
    sam_checkpoint: str = ""  # a file name in WEIGHTS_DIR or a path inside it or MODEL_DIR; "" = official file
    sam_cache_bytes: int = 512 << 20  # in-process SAM embedding cache
    # detection: a box model's .pt served by its OpenVINO export on CPU (auto), or always PyTorch / OpenVINO
    # (detection/engines.py; bench/results/compare.json measures them); exports cached in DETECTION_EXPORT_DIR
    detection_engine: str = DETECTION_ENGINES[0]
    detection_export_dir: Path | None = None  # None: the user's cache (detection.engines.default_cache_dir)
    # OpenVINO's precision (see DEFAULT_DETECTION_PRECISION): bf16 ran ~1.5x faster than f32 on an AVX512-BF16 CPU
    # at the same AP50 with 5 % of the boxes slightly changed; f32 gives PyTorch's predictions exactly
    detection_precision: str = DEFAULT_DETECTION_PRECISION
    # training and versions
    retrain_every: int = 10
    keep_versions: int = 10
    train_timeout: int = 3600
    uncertainty: str = selection.DEFAULT  # selection strategy whose measure scores each task
    # text_cls: how the sentence encoder runs on CPU, int8 ONNX Runtime (exported once into MODEL_DIR/text_cls/onnx)
    # or PyTorch float32 (bench/results/text_speed.json compares them)
    text_encoder: str = TEXT_ENCODERS[0]
    text_onnx_dir: Path | None = None  # where int8 exports are cached (TEXT_ONNX_DIR); None: MODEL_DIR/text_cls/onnx
    # speech recognition: the Whisper model by name or path (a project's extra params `model` wins); "" = tiny.en
    asr_model: str = ""
    # longer audio files are refused (that task's error; the rest of the batch is predicted): one upload must not
    # hold the CPU for hours (tiny.en decodes speech ~5x faster than real time on 2 cores: 3 h take ~35 min); 0 = no
    # limit
    max_audio_seconds: int = 3 * 3600
    # files longer than ASR_BATCH_ABOVE_S seconds are decoded ASR_BATCH_SIZE 30 s windows at a time (asr/batched.py,
    # faster on CPU: bench/results/asr_speed.json); ASR_BATCH_SIZE=1 decodes every file sequentially
    asr_batch_size: int = 8
    asr_batch_above_s: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: `os.environ`)."""
        env = os.environ if env is None else env
        weights = env.get("WEIGHTS_DIR", "").strip()
        roots = [Path(p) for p in _list(env, "LOCAL_FILES_ROOTS")]
        ls_root = env.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "").strip()
        if ls_root:
            roots.append(Path(ls_root))
        return cls(
            cpu_threads=thread_budget(env),
            label_studio_url=env.get("LABEL_STUDIO_URL", env.get("LABEL_STUDIO_HOST", "")).strip().rstrip("/"),
            api_key=env.get("LABEL_STUDIO_API_KEY", "").strip(),
            basic_auth_user=env.get("BASIC_AUTH_USER", ""),
            basic_auth_pass=env.get("BASIC_AUTH_PASS", ""),
            model_dir=Path(env.get("MODEL_DIR", "").strip() or "var/models"),
            weights_dir=Path(weights) if weights else None,
            redis_url=env.get("REDIS_URL", "").strip(),
            log_level=env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO",
            media_cache_dir=Path(env.get("MEDIA_CACHE_DIR", "").strip() or "var/media-cache"),
            media_cache_bytes=_int(env, "MEDIA_CACHE_BYTES", 1 << 30),
            max_media_bytes=_int(env, "MAX_MEDIA_BYTES", 200 << 20),
            allowed_hosts=_list(env, "ALLOWED_MEDIA_HOSTS"),
            local_roots=tuple(roots),
            media_timeout=float(env.get("MEDIA_TIMEOUT", "30") or 30),
            media_deadline=float(env.get("MEDIA_DEADLINE", "300") or 300),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 100_000_000),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", 20 << 20),
            max_labels=_int(env, "MAX_LABELS", 1000),
            allowed_weights=_list(env, "ALLOWED_WEIGHTS"),
            max_request_pixels=_int(env, "MAX_REQUEST_PIXELS", 1_000_000_000),
            sam_model=env.get("SAM_MODEL", "").strip(),
            sam_checkpoint=env.get("SAM_CHECKPOINT", "").strip(),
            sam_cache_bytes=_int(env, "SAM_CACHE_BYTES", 512 << 20),
            detection_engine=_detection_engine(env.get("DETECTION_ENGINE", "")),
            detection_export_dir=Path(env["DETECTION_EXPORT_DIR"].strip())
            if env.get("DETECTION_EXPORT_DIR", "").strip() else None,
            detection_precision=_detection_precision(env.get("DETECTION_PRECISION", "")),
            retrain_every=_int(env, "RETRAIN_EVERY", 10),
            keep_versions=_int(env, "KEEP_VERSIONS", 10),
            train_timeout=_int(env, "TRAIN_TIMEOUT", 3600),
            uncertainty=_strategy(env.get("UNCERTAINTY_STRATEGY", "")),
            text_encoder=_text_encoder(env.get("TEXT_ENCODER", "")),
            text_onnx_dir=Path(env["TEXT_ONNX_DIR"].strip()) if env.get("TEXT_ONNX_DIR", "").strip() else None,
            asr_model=env.get("ASR_MODEL", "").strip(),
            max_audio_seconds=_int(env, "MAX_AUDIO_SECONDS", 3 * 3600),
            asr_batch_size=_int(env, "ASR_BATCH_SIZE", 8),
            asr_batch_above_s=_int(env, "ASR_BATCH_ABOVE_S", 60),
        )

    def with_overrides(self, **changes) -> Settings:
        """A copy with some fields changed (unknown names raise TypeError)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **changes)
