"""`import`: tasks from a folder of media files, CSV, JSON, JSONL or a list of URLs, skipping what is already there.

A task's identity is a stable key: for uploaded files the SHA-256 of the original file (kept in the task's data as
`source_sha256`), for records the value of `--key FIELD`, else a hash of the whole data dict.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import faces
from .context import Context, iter_tasks
from .errors import SyncError

MEDIA = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".wav", ".mp3", ".flac", ".ogg",
         ".m4a", ".mp4", ".webm", ".txt", ".html", ".pdf"}
IMAGES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
HASH_FIELD = "source_sha256"
NAME_FIELD = "source_name"


def data_key(label_config: str) -> str:
    """The task field the label config's first object tag reads (value="$image" -> "image")."""
    m = re.search(r'value="\$([A-Za-z0-9_]+)"', label_config)
    if not m:
        raise SyncError("the project's label config reads no task field ($...): cannot build tasks from URLs")
    return m.group(1)


def task_key(data: dict, key_field: str | None = None) -> str:
    """The stable identity of a task's data."""
    if data.get(HASH_FIELD):
        return f"sha256:{data[HASH_FIELD]}"
    if key_field:
        if key_field not in data:
            return f"json:{_digest(data)}"
        return f"key:{data[key_field]}"
    return f"json:{_digest(data)}"


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def existing_keys(ctx: Context, key_field: str | None) -> set[str]:
    return {task_key(dict(t.data or {}), key_field) for t in iter_tasks(ctx, fields="task_only")}


def read_records(path: Path, kind: str, url_field: str | None) -> list[dict]:
    """Tasks from a CSV/TSV, JSON, JSONL or URL-list file: each is {"data": ...} plus optional predictions."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise SyncError(f"cannot read {path}: {e.strerror or e}", code=2) from None
    rows: list[Any]
    try:
        if kind == "csv":
            rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ","))
        elif kind == "json":
            loaded = json.loads(text)
            rows = loaded if isinstance(loaded, list) else [loaded]
        elif kind == "jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = [{url_field: line.strip()} for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    except (json.JSONDecodeError, csv.Error) as e:
        raise SyncError(f"{path} is not valid {kind.upper()}: {e}", code=2) from None
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SyncError(f"{path}: record {i + 1} is not an object", code=2)
        out.append(row if isinstance(row.get("data"), dict) else {"data": row})
    return out


def import_records(ctx: Context, records: list[dict], key_field: str | None, batch: int = 500) -> tuple[int, int]:
    """Import records not already in the project. Returns (imported, skipped)."""
    seen = existing_keys(ctx, key_field)
    new = []
    for record in records:
        key = task_key(record["data"], key_field)
        if key in seen:
            continue
        seen.add(key)  # duplicates inside the file count once
        new.append(record)
    with tqdm(total=len(new), desc="import", unit="task", disable=not new) as bar:
        for start in range(0, len(new), batch):
            chunk = new[start:start + batch]
            with ctx.ls.errors(f"importing tasks into project {ctx.project_id}"):
                ctx.ls.sdk.projects.import_tasks(ctx.project_id, request=chunk)
            bar.update(len(chunk))
    return len(new), len(records) - len(new)


def _media_files(folder: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in MEDIA], [p for p in files if p.suffix.lower() not in MEDIA]


def import_folder(ctx: Context, folder: Path, blur: bool = False) -> dict[str, int]:
    """Upload every media file of `folder` (one task each) through the import API, skipping known files."""
    files, others = _media_files(folder)
    seen = existing_keys(ctx, None)
    counts = {"imported": 0, "skipped": 0, "ignored": len(others), "faces_blurred": 0}
    for path in tqdm(files, desc="upload", unit="file", disable=not files):
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()  # of the original, so blurring does not defeat the dedup
        if f"sha256:{digest}" in seen:
            counts["skipped"] += 1
            continue
        body = raw
        if blur and path.suffix.lower() in IMAGES:
            body, n = faces.blur_file_bytes(raw, path.suffix)
            counts["faces_blurred"] += n
        r = ctx.ls.raw("POST", f"/api/projects/{ctx.project_id}/import", f"uploading {path.name}",
                       params={"return_task_ids": "true"}, files={"file": (path.name, body)})
        ids = r.json().get("task_ids") or []
        for task_id in ids:
            # remember where the task came from: the dedup key of the next run
            with ctx.ls.errors(f"tagging task {task_id}"):
                data = dict(ctx.ls.sdk.tasks.get(task_id).data or {})
                ctx.ls.sdk.tasks.update(task_id, data={**data, HASH_FIELD: digest,
                                                       NAME_FIELD: str(path.relative_to(folder))})
        seen.add(f"sha256:{digest}")
        counts["imported"] += 1
    return counts


def connect_local_storage(ctx: Context, folder: Path, timeout: float = 3600) -> dict[str, Any]:
    """Serve `folder` through a Label Studio local-files storage (no upload, for large sets) and sync it.

    Label Studio must run with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a parent of `folder`. Syncing again adds only new files.
    """
    path = str(folder.resolve())
    regex = r".*\.(" + "|".join(sorted(e[1:] for e in MEDIA - {".txt", ".html", ".pdf"})) + ")$"
    with ctx.ls.errors(f"listing the local storages of project {ctx.project_id}"):
        storages = [s for s in ctx.ls.sdk.import_storage.local.list(project=ctx.project_id) if s.path == path]
    if storages:
        storage = storages[0]
    else:
        with ctx.ls.errors(f"creating a local-files storage for {path} (is Label Studio started with "
                           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and a DOCUMENT_ROOT above it?)"):
            storage = ctx.ls.sdk.import_storage.local.create(project=ctx.project_id, path=path, regex_filter=regex,
                                                             use_blob_urls=True, title=f"labelloop {folder.name}")
    with ctx.ls.errors(f"syncing the local-files storage {storage.id}"):
        synced = ctx.ls.sdk.import_storage.local.sync(id=storage.id)
        # without Redis Label Studio syncs inline; with it the sync is queued: wait for it to finish
        deadline = time.monotonic() + timeout
        while getattr(synced, "status", None) in ("initialized", "queued", "in_progress"):
            if time.monotonic() > deadline:
                raise SyncError(f"the local-files storage {storage.id} did not finish syncing within {timeout:g}s "
                                f"(status {synced.status})")
            time.sleep(1)
            synced = ctx.ls.sdk.import_storage.local.get(id=storage.id)
    status = getattr(synced, "status", None)
    if status == "failed":
        raise SyncError(f"syncing the local-files storage {storage.id} failed: "
                        f"{(getattr(synced, 'traceback', None) or 'see the Label Studio log').strip()[-300:]}")
    # Label Studio counts the new tasks of the last sync: files imported before are skipped by the storage itself
    return {"storage": storage.id, "status": status, "imported": int(getattr(synced, "last_sync_count", 0) or 0)}


def detect_kind(source: Path, urls: bool) -> str:
    if urls:
        return "urls"
    if source.is_dir():
        return "folder"
    suffix = source.suffix.lower()
    kinds = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
             ".txt": "urls", ".urls": "urls"}
    if suffix not in kinds:
        raise SyncError(f"cannot tell what {source} holds: use a folder, .csv, .json, .jsonl or a URL list (--urls)",
                        code=2)
    if not source.exists():
        raise SyncError(f"{source} does not exist", code=2)
    return kinds[suffix]


def run(ctx: Context, source: Path, urls: bool = False, key: str | None = None, blur: bool = False,
        local_storage: bool = False) -> dict[str, Any]:
    """The `import` command."""
    kind = detect_kind(source, urls)
    if kind != "folder" and (blur or local_storage):
        raise SyncError("--blur-faces and --local-storage work on a folder of files", code=2)
    if kind == "folder":
        if local_storage:
            if blur:
                raise SyncError("--blur-faces needs uploading: Label Studio serves local-files storage as is", code=2)
            return {"kind": kind, **connect_local_storage(ctx, source)}
        return {"kind": kind, **import_folder(ctx, source, blur)}
    records = read_records(source, kind, data_key(ctx.label_config) if kind == "urls" else None)
    imported, skipped = import_records(ctx, records, key)
    return {"kind": kind, "imported": imported, "skipped": skipped}
