"""`sync.py export` without a Label Studio: `export.run` on tasks given as Label Studio's API returns them, with
local image files as their media."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from scripts.labelloop_sync import export
from scripts.labelloop_sync.context import Context


def run_export(monkeypatch, out: Path, label_config: str, tasks: list[dict], fmt: str, copy: bool = True,
               min_agreement: float | None = None) -> dict:
    """`export --format fmt --out out` of `tasks` ({"id", "data", "annotations": [{"id", "result"}, ...]})."""
    sdk_tasks = [SimpleNamespace(id=t["id"], data=t["data"], annotations=t["annotations"], predictions=[])
                 for t in tasks]
    monkeypatch.setattr(export, "iter_tasks", lambda ctx: iter(sdk_tasks))
    ctx = Context(ls=None, project_id=1, title="offline", label_config=label_config, backend=None)
    report = export.run(ctx, fmt, out, min_agreement=min_agreement, copy_media=copy)
    assert json.loads((out / "agreement.json").read_text())["tasks"] == report["tasks"]
    return report


def annotation(result: list[dict], ann_id: int = 1) -> dict:
    return {"id": ann_id, "created_at": f"2026-01-01T00:00:{ann_id:02d}Z", "result": result}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max((a | b).sum(), 1))


def image_file(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), (200, 210, 220)).save(path)
    return path
