"""The media files of exported tasks: one unique file name per task, copies when asked (`--copy-media`), and the
image size when the annotation does not carry it."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from .context import Context
from .errors import SyncError
from .importing import data_key


def media_name(value: str, task_id: int) -> str:
    """The file name a media URL or path ends with (`/data/local-files/?d=dir/file.jpg` -> file.jpg)."""
    parsed = urlparse(value)
    if parsed.query and "d" in parse_qs(parsed.query):
        name = Path(unquote(parse_qs(parsed.query)["d"][0])).name
    else:
        name = Path(unquote(parsed.path)).name
    return name or f"task-{task_id}"


def download(ctx: Context, value: str, dest: Path) -> Path:
    """Copy a task's media (Label Studio upload, local-files, http URL or local path) to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if Path(value).is_file():
        shutil.copyfile(value, dest)
        return dest
    if value.startswith("/"):
        r = ctx.ls.raw("GET", value, f"downloading {value}", stream=True)
    elif value.startswith(ctx.ls.url + "/"):
        r = ctx.ls.raw("GET", value[len(ctx.ls.url):], f"downloading {value}", stream=True)
    elif value.startswith(("http://", "https://")):
        import requests

        try:
            r = requests.get(value, timeout=300, stream=True)
            r.raise_for_status()
        except requests.RequestException as e:
            raise SyncError(f"cannot download {value}: {type(e).__name__}") from None
    else:
        raise SyncError(f"cannot copy {value!r}: not a local file, URL or Label Studio path")
    with open(dest, "wb") as f:
        for block in r.iter_content(1 << 16):
            f.write(block)
    return dest


class Media:
    """Unique file names per task, and copies when asked. Use as a context manager: files fetched only to read an
    image's size go to a scratch folder removed at the end."""

    def __init__(self, ctx: Context, out: Path, subdir: str, copy: bool):
        self.ctx, self.dir, self.copy = ctx, out / subdir, copy
        self.scratch = out / ".size"
        self.key = data_key(ctx.label_config)
        self._names: dict[int, str] = {}
        self._taken: set[str] = set()

    def __enter__(self) -> Media:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def value(self, item) -> str:
        """The task's media URL or path."""
        return str(item.data.get(self.key, ""))

    def name(self, item) -> str:
        if item.id not in self._names:
            name = media_name(self.value(item), item.id)
            if name in self._taken:
                name = f"{item.id}_{name}"
            self._taken.add(name)
            self._names[item.id] = name
        return self._names[item.id]

    def fetch(self, item) -> Path | None:
        """The copy in the export (None unless copying)."""
        if not self.copy:
            return None
        return download(self.ctx, self.value(item), self.dir / self.name(item))

    def local(self, item, copied: Path | None) -> Path:
        """A local file of the task's media: the copy, else one in the scratch folder."""
        return copied or download(self.ctx, self.value(item), self.scratch / self.name(item))

    def image_size(self, item, copied: Path | None) -> tuple[int, int]:
        """(width, height): as the annotation stored it, else read from the image."""
        for r in item.result:
            if r.get("original_width") and r.get("original_height"):
                return int(r["original_width"]), int(r["original_height"])
        from PIL import Image

        with Image.open(self.local(item, copied)) as img:
            return img.size
