"""`export`: completed tasks as JSON or CSV (`export_tables.py`), COCO (`export_coco.py`), YOLO
(`export_yolo.py`), Pascal VOC (`export_voc.py`), an ASR manifest (`export_asr.py`), an OCR manifest with line
crops (`export_ocr.py`), or text spans as CoNLL BIO lines or spaCy JSONL (`export_spans.py`), with annotator
agreement.

A task is completed when it has at least one submitted (not cancelled) annotation; the exported labels are the
newest such annotation's (the rule training uses). Tasks with several annotations get their agreement
(`agreement.py`); `--min-agreement` drops those below it (tasks with a single annotation have none and are kept).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lsclient import newest_annotation

from . import export_spans
from .agreement import task_agreement
from .context import Context, done_annotations, iter_tasks, plain
from .errors import SyncError
from .export_asr import audio_duration, write_asr
from .export_coco import write_coco
from .export_ocr import write_ocr
from .export_tables import write_csv, write_json
from .export_voc import write_voc
from .export_yolo import write_yolo

__all__ = ["FORMATS", "Item", "audio_duration", "collect", "run"]

FORMATS = ("json", "csv", "coco", "yolo", "voc", "asr-manifest", "ocr", "conll", "spacy-jsonl")


@dataclass
class Item:
    """One exported task: its data, the chosen annotation's result, agreement and annotation count."""

    id: int
    data: dict
    result: list[dict]
    agreement: float | None
    n_annotations: int
    annotations: list[dict]
    top_k: dict[str, list[dict]] = field(default_factory=dict)  # the newest prediction's k best classes per control


def collect(ctx: Context, include_all: bool = False, min_agreement: float | None = None) -> tuple[list[Item], int]:
    """The tasks to export and how many completed ones `min_agreement` dropped."""
    items, dropped = [], 0
    for task in iter_tasks(ctx):
        done = done_annotations(task)
        if not done and not include_all:
            continue
        agreement = task_agreement(done)
        if min_agreement is not None and agreement is not None and agreement < min_agreement:
            dropped += 1
            continue
        chosen = newest_annotation(done)
        items.append(Item(task.id, dict(task.data or {}), list(chosen.get("result") or []) if chosen else [],
                          agreement, len(done), done, _top_k(task)))
    return items, dropped


def _top_k(task: Any) -> dict[str, list[dict]]:
    """The newest prediction's `value.top_k` per control ([{"label", "score"}], as the image_cls backend writes)."""
    newest = max((plain(p) for p in getattr(task, "predictions", None) or []), key=lambda p: p.get("id") or 0,
                 default={})
    return {r.get("from_name", ""): r["value"]["top_k"] for r in newest.get("result") or []
            if isinstance(r.get("value"), dict) and isinstance(r["value"].get("top_k"), list)}


def _spans(fmt: str) -> Callable[[Context, list[Item], Path, bool], tuple[list[Path], dict]]:
    def write(ctx: Context, items: list[Item], out: Path, copy: bool) -> tuple[list[Path], dict]:
        writer = export_spans.write_conll if fmt == "conll" else export_spans.write_spacy_jsonl
        files, bad_spans = writer(items, ctx.label_config, out)
        return files, {"spans_outside_their_text": bad_spans}

    return write


def _plain(writer: Callable[..., list[Path]], media: bool = True):
    def write(ctx: Context, items: list[Item], out: Path, copy: bool) -> tuple[list[Path], dict]:
        return (writer(ctx, items, out, copy) if media else writer(items, out)), {}

    return write


WRITERS = {"json": _plain(write_json, media=False), "csv": _plain(write_csv, media=False),
           "coco": _plain(write_coco), "yolo": _plain(write_yolo), "voc": _plain(write_voc),
           "asr-manifest": _plain(write_asr), "ocr": _plain(write_ocr), "conll": _spans("conll"),
           "spacy-jsonl": _spans("spacy-jsonl")}


def run(ctx: Context, fmt: str, out: Path, include_all: bool = False, min_agreement: float | None = None,
        copy_media: bool = False) -> dict[str, Any]:
    """The `export` command."""
    if fmt not in FORMATS:
        raise SyncError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}", code=2)
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise SyncError("--min-agreement must be within 0..1", code=2)
    items, dropped = collect(ctx, include_all, min_agreement)
    out.mkdir(parents=True, exist_ok=True)
    files, extra = WRITERS[fmt](ctx, items, out, copy_media)
    scored = [i.agreement for i in items if i.agreement is not None]
    report = {"format": fmt, "tasks": len(items), "dropped_low_agreement": dropped,
              "overlapping": len(scored), "mean_agreement": round(sum(scored) / len(scored), 4) if scored else None,
              "files": [str(f) for f in files], **extra}
    (out / "agreement.json").write_text(json.dumps(
        {**report, "per_task": {str(i.id): i.agreement for i in items if i.agreement is not None}}, indent=2))
    return report
