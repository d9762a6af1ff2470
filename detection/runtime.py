"""Ultralytics set-up that works offline: its own settings folder and a local font.

Ultralytics fetches Arial.ttf on first use and writes settings under the home folder; on a machine without
internet that stalls or fails. `configure()` runs before `ultralytics` is imported.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def _bundled_font() -> Path | None:
    for p in FONT_CANDIDATES:
        if Path(p).is_file():
            return Path(p)
    try:  # matplotlib ships DejaVu; it is there when the dev requirements are
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return p if p.is_file() else None
    except Exception:
        return None


def configure() -> Path:
    """Point Ultralytics at a settings folder of labelloop's own and put a font there.

    Respects YOLO_CONFIG_DIR and YOLO_OFFLINE when already set.

    Returns:
        The settings folder.
    """
    base = os.environ.get("YOLO_CONFIG_DIR")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(cache) / "labelloop" / "ultralytics"))
    folder = Path(base) / "Ultralytics"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            target = folder / name
            font = _bundled_font()
            if not target.exists() and font is not None:
                shutil.copyfile(font, target)
    except OSError:
        pass  # a read-only home: Ultralytics falls back to its own temp folder
    os.environ.setdefault("YOLO_VERBOSE", "False")
    # a server must not pip-install packages into itself at run time
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    return Path(base)


def keep_process_threads() -> None:
    """Make Ultralytics keep the PyTorch thread count the process chose.

    Its `select_device()` sets PyTorch's threads to its own `NUM_THREADS` (cores - 1, at most 8) for the whole
    process at the first prediction and at every training run; pointing that at the count in force makes the call
    change nothing. Call it before Ultralytics predicts or trains.
    """
    import torch
    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = torch.get_num_threads()


configure()
