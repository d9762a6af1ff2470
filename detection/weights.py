"""Which YOLO weights may be loaded: Ultralytics unpickles a `.pt` file, so loading one runs whatever code it holds.

A weights spec (a label config's `model_path`, a project's `train_from`) may therefore only name
- a file of the weights folder (`WEIGHTS_DIR`) that the operator allowed (`allowed`: shell patterns of names in that
  folder; by default the Ultralytics-named `yolo*` files of the known formats), or
- a file the caller vouches for (`written`: e.g. the weights of the versions the backend trained itself).
A bare name that is not in the weights folder is never downloaded, except the default weights of a task (the
backend's own choice, what an empty spec means); every path is resolved (symlinks, "..") before it is checked.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Callable, Iterable

DEFAULT_WEIGHTS = {"detect": "yolov8n.pt", "segment": "yolov8n-seg.pt"}
FORMATS = (".pt", ".onnx", ".torchscript", ".engine", ".tflite", ".mlpackage")
OPENVINO = "_openvino_model"
# names of the weights folder loadable without an operator's list: Ultralytics' own file names
DEFAULT_ALLOWED = tuple(f"yolo*{ext}" for ext in FORMATS) + (f"yolo*{OPENVINO}",)


class WeightsError(ValueError):
    """A weights spec that names something not allowed, not present, or not a weights file."""


def _is_weights_name(name: str) -> bool:
    return name.endswith(FORMATS) or name.endswith(OPENVINO)


def is_allowed(relative: str, allowed: Iterable[str]) -> bool:
    """Whether a path relative to the weights folder matches the operator's list.

    A pattern without "/" matches files at the top of the folder only (`*` would otherwise match across "/").
    """
    for pattern in allowed:
        if "/" not in pattern and "/" in relative:
            continue
        if fnmatch.fnmatchcase(relative, pattern):
            return True
    return False


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_weights(spec: str | None, task: str, weights_dir: str | Path | None = None,
                    allowed: Iterable[str] = DEFAULT_ALLOWED,
                    written: Callable[[Path], bool] | None = None) -> str:
    """The path (or, for a task's default weights only, the bare name) of the weights to load.

    Args:
        spec: a bare file name ("yolov8n.pt"), a path relative to `weights_dir`, an absolute path, or None (or
            empty) for the default weights of `task`. An OpenVINO export is a folder ending in "_openvino_model".
        task: "detect" or "segment".
        weights_dir: the operator's weights folder; bare names and relative paths are taken from here.
        allowed: shell patterns of the names (paths relative to `weights_dir`) that may be loaded from there.
        written: called with a resolved path outside `weights_dir`; True when the caller wrote that file itself
            (a trained version's weights), which makes it loadable.

    Returns:
        An absolute, resolved path, or the task's default name when it is not in `weights_dir` (Ultralytics
        then downloads it, where the machine is online).

    Raises:
        WeightsError: a name or path that is not allowed, not present, or not a weights file.
    """
    allowed = tuple(allowed)
    name = (spec or "").strip() or DEFAULT_WEIGHTS[task]
    root = Path(weights_dir).expanduser().resolve() if weights_dir else None
    if "/" not in name and "\\" not in name and name not in ("..", "."):
        return _by_name(name, task, root, allowed)
    path = Path(name).expanduser()
    if not path.is_absolute():
        if root is None:
            raise WeightsError(f"model_path {name!r} is relative, but no WEIGHTS_DIR is set to resolve it in")
        path = root / path
    path = path.resolve()  # symlinks and ".." resolved before any check, so neither can lead out of a root
    if root is not None and _inside(path, root) and path != root:
        relative = path.relative_to(root).as_posix()
        if not is_allowed(relative, allowed):
            raise WeightsError(f"model_path {name!r} is not among the allowed weights of WEIGHTS_DIR "
                               f"(ALLOWED_WEIGHTS: {', '.join(allowed) or 'none'})")
    elif written is None or not written(path):
        raise WeightsError(f"model_path {name!r} is outside the model roots: only allowed files of WEIGHTS_DIR "
                           f"({root or 'not set'}) and the weights of this backend's own versions can be loaded")
    if not path.exists():
        raise WeightsError(f"model_path {name!r}: no such file ({path})")
    if not _is_weights_name(path.name):
        raise WeightsError(f"model_path {name!r} is not a YOLO weights file (one of {', '.join(FORMATS)} or an "
                           "OpenVINO folder)")
    return str(path)


def _by_name(name: str, task: str, root: Path | None, allowed: tuple[str, ...]) -> str:
    if not _is_weights_name(name):
        raise WeightsError(f"{name!r} is not a YOLO weights file (one of {', '.join(FORMATS)} or an OpenVINO "
                           "folder)")
    default = name == DEFAULT_WEIGHTS[task]
    if not default and not is_allowed(name, allowed):
        raise WeightsError(f"model_path {name!r} is not among the allowed weights of WEIGHTS_DIR "
                           f"(ALLOWED_WEIGHTS: {', '.join(allowed) or 'none'})")
    # the entry itself is the operator's: where a link of theirs points is their choice
    if root is not None and (root / name).exists():
        return str((root / name).resolve())
    if default:
        return name  # the backend's default: Ultralytics downloads it the normal way, where it can
    raise WeightsError(f"model_path {name!r} is not in WEIGHTS_DIR ({root or 'not set'}); weights are never "
                       "downloaded for a request: put the file there")
