"""Where YOLO weights come from: a file inside the allowed roots, or a name looked up in WEIGHTS_DIR first and
downloaded the normal way (Ultralytics' own download) otherwise."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

DEFAULT_WEIGHTS = {"detect": "yolov8n.pt", "segment": "yolov8n-seg.pt"}
FORMATS = (".pt", ".onnx", ".torchscript", ".engine", ".tflite", ".mlpackage")


class WeightsError(ValueError):
    """A weights spec that names a file outside the allowed roots, or one that does not exist."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def resolve_weights(spec: str | None, task: str, weights_dir: str | Path | None = None,
                    roots: Iterable[str | Path] = ()) -> str:
    """The path (or the bare name, for Ultralytics to download) of the weights to load.

    Args:
        spec: a bare file name ("yolov8n.pt"), a path relative to `weights_dir`, an absolute path, or None for
            the default weights of `task`. An OpenVINO export is a folder ending in "_openvino_model".
        task: "detect" or "segment".
        weights_dir: looked in first for bare names; relative paths are taken from here.
        roots: the folders (with `weights_dir`) a path may point into; anything outside is refused.

    Returns:
        An absolute path inside the roots, or a bare name that is not on disk (Ultralytics downloads it).

    Raises:
        WeightsError: for a path outside the roots, a missing file given by path, or an unknown format.
    """
    name = (spec or DEFAULT_WEIGHTS[task]).strip()
    allowed = [Path(r).expanduser().resolve() for r in ([weights_dir] if weights_dir else []) + list(roots)]
    is_name = "/" not in name and "\\" not in name and name not in ("..", ".")
    if is_name:
        if not (name.endswith(FORMATS) or name.endswith("_openvino_model")):
            raise WeightsError(f"{name!r} is not a YOLO weights file (one of {', '.join(FORMATS)} or an OpenVINO "
                               "folder)")
        if weights_dir is not None and (Path(weights_dir) / name).exists():
            return str((Path(weights_dir) / name).resolve())
        return name  # Ultralytics downloads known names (yolov8n.pt, yolo11n-seg.pt, ...) the normal way
    path = Path(name).expanduser()
    if not path.is_absolute():
        if weights_dir is None:
            raise WeightsError(f"model_path {name!r} is relative, but no WEIGHTS_DIR is set to resolve it in")
        path = Path(weights_dir) / path
    path = path.resolve()  # symlinks and ".." resolved before the check, so neither can escape a root
    if not any(_inside(path, root) for root in allowed):
        raise WeightsError(f"model_path {name!r} is outside the model roots ({', '.join(map(str, allowed)) or 'none set'})")
    if not path.exists():
        raise WeightsError(f"model_path {name!r}: no such file ({path})")
    return str(path)
