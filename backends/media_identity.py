"""Which content a fetched media file holds, known without reading it: a key for what is computed from the media.

A click on an image needs the image's SAM embedding, cached under a key of the image. Hashing the decoded pixels
costs a decode and a hash of every pixel on every click; these keys cost a `stat` (and an extended attribute):

- a download (a file of the media cache, named by the hash of its absolute URL, Label Studio's origin included):
  the file name + size + the response's validator, a strong ETag or a Last-Modified at least 60 s older than the
  response's Date (RFC 9110 8.8.2.2: only then can it stand for one content). The validator is kept with the
  file as an extended attribute written before the file is renamed into place, so content and validator are
  replaced together;
- a local file: its real path, device, inode, size, mtime and ctime (ns), unless its ctime is within `RACY_S`
  of now: a file rewritten twice within one timestamp tick could keep them all, so, as git does for its index,
  a file changed that recently is keyed by its content;
- otherwise (no validator, no extended attributes on this file system): the sha256 of the file's bytes (not of
  decoded pixels: no decode, and a compressed file is ~10x smaller).

Why it is safe to share keys between projects and processes: a key is computed by the backend from the file its
own fetch returned (access checks included), never from a string a request supplies, so a request reaches an
entry only for media its own fetch resolved to the same file with the same validator; Label Studio's
/data/upload/ paths are resolved against the fetcher's Label Studio before they are hashed, so two instances'
same-named uploads differ; the key is a sha256, so shared stores (Redis) see neither URLs nor paths.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO, Mapping

VALIDATOR_XATTR = "user.labelloop.validator"
# a local file whose ctime is this close to now is keyed by its content (timestamps have a granularity)
RACY_S = 3.0
# a Last-Modified this much older than the response's Date names one content (RFC 9110 8.8.2.2)
LAST_MODIFIED_MIN_AGE_S = 60.0
_CHUNK = 1 << 20


def response_validator(headers: Mapping[str, str]) -> str | None:
    """What identifies a response's content: its strong ETag, else a Last-Modified at least 60 s before its Date.

    Args:
        headers: the response headers (case-insensitive mapping, e.g. requests' `resp.headers`).

    Returns:
        A JSON string, or None when the response carries no validator that names one content.
    """
    etag = (headers.get("etag") or "").strip()
    if etag and not etag.startswith("W/"):  # a weak ETag may stay the same across byte changes
        return json.dumps({"etag": etag})
    modified, date = headers.get("last-modified"), headers.get("date")
    if modified and date:
        try:
            age = (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
        if age >= LAST_MODIFIED_MIN_AGE_S:
            return json.dumps({"last_modified": modified.strip()})
    return None


def record_validator(out: BinaryIO, headers: Mapping[str, str]) -> None:
    """Keep the response's validator on the file being downloaded (`out`), if it has one and the file system
    takes extended attributes (else that file is keyed by its content)."""
    validator = response_validator(headers)
    if validator is None:
        return
    try:
        os.setxattr(out.fileno(), VALIDATOR_XATTR, validator.encode())
    except (OSError, ValueError, AttributeError):  # no xattr support, or not a real file (tests' buffers)
        pass


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_key(path: Path | str) -> str:
    """The key `media_key` falls back to: the sha256 of the file's bytes. A file keyed by content while it was
    just changed is keyed by its stat later: a miss under the stat key may still be a hit under this one."""
    return "content-" + file_sha256(Path(path))


def _downloaded(path: Path, st: os.stat_result) -> str | None:
    try:
        validator = os.getxattr(path, VALIDATOR_XATTR).decode()
    except (OSError, UnicodeDecodeError):
        return None
    return json.dumps(["url", path.name, st.st_size, validator])


def _local(path: Path, st: os.stat_result) -> str | None:
    if abs(time.time() - st.st_ctime) < RACY_S:
        return None
    return json.dumps(["file", os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                       st.st_ctime_ns])


def media_key(path: Path | str, media: Any = None) -> str:
    """A key of the content of a file `media` (a `MediaFetcher`) returned: two different contents never share
    one, and the same unchanged file keeps it (see the module docstring).

    Raises:
        OSError: the file cannot be read (e.g. evicted from the media cache meanwhile).
    """
    path = Path(path)
    st = os.stat(path)
    cache = getattr(getattr(media, "cache", None), "root", None)
    in_cache = cache is not None and os.path.abspath(path.parent) == os.path.abspath(cache)
    identity = _downloaded(path, st) if in_cache else _local(path, st)
    if identity is None:
        return content_key(path)
    scope = getattr(media, "ls_url", "") or ""
    return "media-" + hashlib.sha256(json.dumps([scope, identity]).encode()).hexdigest()
