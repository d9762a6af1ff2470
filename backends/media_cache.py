"""The on-disk cache of downloaded media: files keyed by URL, bounded in bytes, shared between processes."""
from __future__ import annotations

import hashlib
import os
import re
import stat
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable
from urllib.parse import parse_qs, unquote, urlsplit

_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600


def _suffix(url: str) -> str:
    # A file extension helps decoders (ffmpeg, soundfile) that guess the format from the name.
    parts = urlsplit(url)
    name = parts.path
    if name.rstrip("/").endswith("/data/local-files"):
        name = parse_qs(parts.query).get("d", [""])[0]
    suffix = PurePosixPath(unquote(name)).suffix
    return suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""


class MediaCache:
    """Downloaded files keyed by URL, bounded in bytes (least recently used out first), shared between processes.

    A file is named by the sha256 of its absolute URL; writes go to a temporary file and are renamed into place,
    so readers never see half a file. A hit touches the file's mtime; after each write the oldest files are removed
    until the folder is within budget. The file just written is never removed by its own write, so one larger than
    the whole budget is still returned and stays until the next write pushes it out. A returned path is valid
    until later writes (in any process) push it out: read it promptly.
    """

    def __init__(self, root: str | Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path_for(self, url: str, variant: str = "") -> Path:
        """Where `url`'s content is (or would be) cached; `variant` keeps apart copies that must not be shared
        (e.g. one per credential)."""
        key = f"{url}\n{variant}" if variant else url
        return self.root / (hashlib.sha256(key.encode()).hexdigest() + _suffix(url))

    def get(self, url: str, variant: str = "") -> Path | None:
        """The cached file for `url`, marked as recently used, or None."""
        path = self.path_for(url, variant)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def store(self, url: str, write: Callable[[BinaryIO], None], variant: str = "") -> Path:
        """Cache what `write` writes for `url` (nothing is kept if it raises).

        Args:
            url: the absolute URL the content came from.
            write: writes the content into the binary file it is given.
            variant: as in `path_for`.

        Returns:
            The cached file.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path_for(url, variant)
        tmp = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                write(f)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.evict(keep=final)
        return final

    def size(self) -> int:
        """Bytes held by cached files (temporary files excluded)."""
        return sum(size for _, _, size in self._entries())

    def evict(self, keep: Path | None = None) -> None:
        """Remove the least recently used files until the cache fits its budget (`keep` stays)."""
        entries = sorted(self._entries())
        total = sum(size for _, _, size in entries)
        for _, path, size in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and path == str(keep):
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # another process evicted it first
            total -= size

    def _entries(self) -> list[tuple[float, str, int]]:
        out = []
        now = time.time()
        try:
            it = list(os.scandir(self.root))
        except FileNotFoundError:
            return out
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if entry.name.startswith(_TMP_PREFIX):
                # a write in flight in some process, or the leftover of one that crashed
                if now - st.st_mtime > _STALE_TMP_S:
                    Path(entry.path).unlink(missing_ok=True)
                continue
            out.append((st.st_mtime, entry.path, st.st_size))
        return out
