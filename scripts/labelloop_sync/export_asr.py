"""`export --format asr-manifest`: NeMo-style manifest.jsonl (`audio_filepath`, `text`, `duration`)."""
from __future__ import annotations

import json
import struct
import wave
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .context import Context
from .export_media import Media


def audio_duration(path: Path) -> float | None:
    """Seconds of a WAV or FLAC file from its header, None for other formats."""
    try:
        with open(path, "rb") as f:
            head = f.read(42)
        if head[:4] == b"fLaC":
            # STREAMINFO: 20-bit sample rate, 3+5 bits, 36-bit total samples, right after the block header
            bits = int.from_bytes(head[18:26], "big")
            rate, total = bits >> 44, bits & ((1 << 36) - 1)
            return round(total / rate, 3) if rate else None
        if head[:4] == b"RIFF":
            with wave.open(str(path), "rb") as w:
                return round(w.getnframes() / w.getframerate(), 3)
    except (OSError, wave.Error, EOFError, struct.error):
        return None
    return None


def write_asr(ctx: Context, items: list, out: Path, copy: bool) -> list[Path]:
    media = Media(ctx, out, "audio", copy)
    path = out / "manifest.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for item in tqdm(items, desc="asr", unit="task", disable=len(items) < 20):
            text = " ".join(t for r in item.result if str(r.get("type", "")).lower() == "textarea"
                            for t in (r.get("value") or {}).get("text") or [])
            local = media.fetch(item)
            row: dict[str, Any] = {"audio_filepath": str(local.resolve()) if local else media.value(item),
                                   "text": text.strip(), "ls_task_id": item.id}
            duration = audio_duration(local) if local else None
            if duration is not None:
                row["duration"] = duration
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [path]
