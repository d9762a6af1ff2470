"""Fetching task media (images, audio, text files) safely.

A task's data holds references: Label Studio paths (/data/upload/..., /data/local-files/?d=...,
/tasks/<id>/resolve/?fileuri=...), http(s) URLs, file:// URLs or absolute paths. `MediaFetcher` turns one into a
local file, guarding against SSRF (only Label Studio and allow-listed hosts), reads outside the configured local
roots, and oversized downloads. Downloads land in an on-disk cache bounded in bytes that several processes can
share (`media_cache.py`); URLs are parsed, allow-listed and connected to through `media_url.py`.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import time
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import requests
import requests.adapters
import requests.utils
import urllib3

from .config import Settings
from .exceptions import LabelloopError, MediaError, MediaNotAllowed, MediaTooLarge, TaskDataError
from .labels import task_value
from .media_cache import MediaCache
from .media_identity import record_validator
from .media_url import PINS, HttpTarget, PinnedAdapter, host_allowed, host_listed, parse_http_url, redact_url

__all__ = ["MediaCache", "MediaFetcher", "HttpTarget", "parse_http_url", "redact_url", "task_media"]

_MAX_REDIRECTS = 5
_CHUNK = 1 << 16
_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_CLOUD_SCHEMES = {"s3", "gs", "gcs", "azure-blob", "azure", "az", "wasb", "wasbs", "abfs", "abfss"}
# Paths that are Label Studio's own routes even when a local root happens to be mounted at /data.
_LS_ROUTES = ("/data/upload/", "/data/local-files", "/tasks/", "/api/")
# The routes through which Label Studio serves task media: the only requests that carry its API key.
_LS_MEDIA_PATH = re.compile(r"^/(data/upload/|data/local-files/?$|storage-data/|(tasks|projects)/\d+/(resolve|presign)/?$)")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def _reason(e: Exception) -> str:
    # requests' messages quote the full URL (query included), so only the OS error is kept
    m = _ERRNO_RE.search(str(e))
    return m.group(0).strip() if m else type(e).__name__


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _ls_origin(url: str) -> tuple[str, int] | None:
    if not url:
        return None
    try:
        return parse_http_url(url).origin
    except MediaError:
        return None  # nothing is Label Studio's, so its paths are refused with the reason at fetch time


class MediaFetcher:
    """Turns a task's media reference into a local file, within what this backend may read."""

    def __init__(self, settings: Settings, ls_url: str | None = None,
                 auth: Callable[[], dict[str, str]] | None = None, credential: str = ""):
        """
        Args:
            settings: limits, allow-list, local roots and cache location.
            ls_url: Label Studio's address (default: settings.label_studio_url).
            auth: returns the Authorization headers for Label Studio, e.g. `LabelStudioClient.auth_headers`.
            credential: the key behind `auth` (only a hash of it is kept): a file fetched with one key is cached
                for that key only, so a project whose key Label Studio would refuse never reads it from the cache.
        """
        self.settings = settings
        url = (ls_url or settings.label_studio_url or "").strip().rstrip("/")
        if url and "://" not in url:
            url = "http://" + url
        self.ls_url = url
        self._ls_origin = _ls_origin(url)
        self._ls_prefix = urlsplit(url).path.rstrip("/") if self._ls_origin else ""
        self._auth = auth
        self._credential = hashlib.sha256(credential.encode()).hexdigest()[:16] if credential else "none"
        # Each root both as written and with symlinks resolved: the first classifies paths, the second confines.
        self._roots = [(os.path.normpath(os.path.abspath(r)), os.path.realpath(r)) for r in settings.local_roots]
        self.cache = MediaCache(settings.media_cache_dir, settings.media_cache_bytes)
        self._session = requests.Session()
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, PinnedAdapter())

    def is_url(self, value: str) -> bool:
        """Whether `fetch` would treat `value` as a reference rather than inline text.

        Args:
            value: a task data value.

        Returns:
            True for scheme://... URLs, Label Studio paths (/data/..., /tasks/...) and paths under a local root.
        """
        if not isinstance(value, str):
            return False
        v = value.strip()
        if not v or "\n" in v:
            return False
        return bool(_SCHEME_RE.match(v)) or v.startswith(("/data/", "/tasks/")) or self._under_root(v)

    def fetch(self, value: str) -> Path:
        """A local file holding the content `value` refers to.

        Args:
            value: a URL, a Label Studio path or an absolute path.

        Returns:
            The file: in the media cache for downloads, the original for local files.
        """
        if not isinstance(value, str) or not value.strip():
            raise MediaError("empty media reference")
        value = value.strip()
        scheme = urlsplit(value).scheme.lower() if _SCHEME_RE.match(value) else ""
        if scheme in ("http", "https"):
            return self._fetch_http(value)
        if scheme == "file":
            parts = urlsplit(value)
            if parts.netloc not in ("", "localhost"):
                raise MediaNotAllowed(f"{redact_url(value)}: file:// URLs naming a host are not allowed")
            return self._local(unquote(parts.path), value)
        if scheme in _CLOUD_SCHEMES:
            raise MediaError(
                f"{redact_url(value)}: this backend does not read cloud storage directly; connect the storage to "
                "the Label Studio project so tasks carry Label Studio's presigned or /resolve/ URLs")
        if scheme:
            raise MediaError(f"{redact_url(value)}: unsupported URL scheme {scheme}://")
        if value.startswith("/") and not value.startswith("//"):
            return self._fetch_path(value)
        raise MediaError(f"{value[:80]!r} is neither a URL nor an absolute path")

    def fetch_text(self, value: str, encoding: str = "utf-8") -> str:
        """The content `value` refers to, decoded as text."""
        path = self.fetch(value)
        try:
            return path.read_text(encoding=encoding)
        except UnicodeDecodeError:
            raise MediaError(f"{redact_url(value)} is not {encoding} text") from None
        except OSError as e:
            raise MediaError(f"could not read {redact_url(value)}: {e.strerror or type(e).__name__}") from None

    # --- paths and local files

    def _under_root(self, path: str) -> bool:
        norm = os.path.normpath(path)
        return any(_inside(norm, written) or _inside(norm, real) for written, real in self._roots)

    def _fetch_path(self, value: str) -> Path:
        if value.startswith("/data/local-files"):
            d = parse_qs(urlsplit(value).query).get("d", [""])[0]
            local = self._local_files(d)
            if local is not None:
                return local
            try:
                return self._fetch_ls(value)
            except MediaError as e:
                if type(e) is not MediaError:
                    raise
                raise MediaError(f"{e} (and {d!r} is under no LOCAL_FILES_ROOTS folder)") from None
        if not value.startswith(_LS_ROUTES) and self._under_root(value):
            return self._local(value, value)
        return self._fetch_ls(value)

    def _fetch_ls(self, path: str) -> Path:
        if not self.ls_url:
            if not path.startswith(_LS_ROUTES):
                raise MediaNotAllowed(f"{redact_url(path)!r} is outside the local folders this backend may read "
                                      "(LOCAL_FILES_ROOTS) and there is no Label Studio URL to resolve it against")
            raise MediaError(f"{redact_url(path)} is a Label Studio path but LABEL_STUDIO_URL is not set")
        return self._fetch_http(self.ls_url + path)

    def _local_files(self, d: str) -> Path | None:
        # Label Studio serves /data/local-files/?d=rel from its document root; read it from disk when mounted here.
        if not d:
            raise MediaError("a /data/local-files/ URL without a d= path")
        rel = PurePosixPath(d)
        if rel.is_absolute() or ".." in rel.parts:
            raise MediaNotAllowed(f"local-files path {d!r} escapes its document root")
        for written, _ in self._roots:
            candidate = os.path.join(written, *rel.parts)
            if os.path.exists(candidate):
                return self._local(candidate, d)
        return None

    def _local(self, path: str, shown: str) -> Path:
        if not os.path.isabs(path):
            raise MediaNotAllowed(f"{shown!r}: only absolute paths are read from disk")
        real = os.path.realpath(path)
        if not any(_inside(real, root) for _, root in self._roots):
            # Same answer whether or not the file exists, so probing reveals nothing.
            raise MediaNotAllowed(f"{shown!r} is outside the local folders this backend may read (LOCAL_FILES_ROOTS)")
        if not os.path.isfile(real):
            raise MediaError(f"{shown!r}: no such file")
        size = os.path.getsize(real)
        if size > self.settings.max_media_bytes:
            raise MediaTooLarge(f"{shown!r} is {size} bytes, over MAX_MEDIA_BYTES={self.settings.max_media_bytes}")
        return Path(real)

    # --- http

    def _is_ls(self, target: HttpTarget) -> bool:
        return self._ls_origin is not None and target.origin == self._ls_origin

    def _gets_token(self, target: HttpTarget) -> bool:
        # Label Studio's key goes to Label Studio's media routes only: not to its API, not to any other host.
        if self._auth is None or not self._is_ls(target) or not target.path.startswith(self._ls_prefix + "/"):
            return False
        return bool(_LS_MEDIA_PATH.match(target.path[len(self._ls_prefix):]))

    def _check_host(self, url: str) -> HttpTarget:
        target = parse_http_url(url)
        if self._is_ls(target) or host_allowed(target.host, self.settings.allowed_hosts):
            return target
        raise MediaNotAllowed(
            f"{redact_url(url)}: host {target.host} is neither Label Studio's nor in ALLOWED_MEDIA_HOSTS")

    def _fetch_http(self, url: str) -> Path:
        target = self._check_host(url)
        # what Label Studio serves only with a key is cached per key; other URLs are the same for everyone
        variant = self._credential if self._gets_token(target) else ""
        cached = self.cache.get(target.url, variant)
        if cached is not None:
            return cached
        return self.cache.store(target.url, lambda out: self._download(target, out), variant)

    def _download(self, target: HttpTarget, out: BinaryIO) -> None:
        first = target.url
        deadline = time.monotonic() + self.settings.media_deadline
        for _ in range(_MAX_REDIRECTS + 1):
            token = self._gets_token(target)
            with self._get(target, token, deadline) as resp:
                if resp.is_redirect:
                    target = self._check_host(urljoin(target.url, resp.headers["location"]))
                    continue
                if not 200 <= resp.status_code < 300:
                    hint = ""
                    if resp.status_code in (401, 403) and self._is_ls(target):
                        hint = (" (Label Studio refused the API key)" if token else
                                " (Label Studio serves media to signed-in users only: set LABEL_STUDIO_API_KEY)")
                    raise MediaError(
                        f"could not fetch {redact_url(target.url)}: {resp.status_code} {resp.reason}".rstrip() + hint)
                self._stream(resp, target.url, out, deadline)
                record_validator(out, resp.headers)  # renamed into place with the content
                return
        raise MediaError(f"could not fetch {redact_url(first)}: more than {_MAX_REDIRECTS} redirects")

    def _get(self, target: HttpTarget, token: bool, deadline: float) -> requests.Response:
        """Send one GET to `target`, built from its parsed parts, the token only if `token`."""
        url = target.url
        prepared = self._session.prepare_request(requests.Request("GET", url))
        # The client re-parses what it is given: connect only where the checked URL says, or not at all.
        if parse_http_url(prepared.url).origin != target.origin:
            raise MediaNotAllowed(f"{redact_url(url)}: the HTTP client would connect to another host")
        if token:
            prepared.headers.update(self._auth())
        env = self._session.merge_environment_settings(prepared.url, {}, None, None, None)
        timeout = min(self.settings.media_timeout, _remaining(url, deadline))
        # through a proxy the proxy resolves and connects; there is nothing here to pin
        proxied = requests.utils.select_proxy(prepared.url, env["proxies"]) is not None
        PINS.hosts = {} if proxied else {target.host: self._addresses(target)}
        try:
            return self._session.send(prepared, stream=True, allow_redirects=False, timeout=timeout,
                                      proxies=env["proxies"], verify=env["verify"], cert=env["cert"])
        except requests.Timeout:
            raise MediaError(f"could not fetch {redact_url(url)}: timed out after {timeout:g}s") from None
        except requests.RequestException as e:
            raise MediaError(f"could not fetch {redact_url(url)}: {_reason(e)}") from None
        finally:
            PINS.hosts = {}

    def _addresses(self, target: HttpTarget) -> list[str]:
        """The addresses the request may connect to: resolved once here, so a second DNS answer cannot differ.

        A host that is allowed only through a wildcard pattern (`*`, `*.example.com`) must resolve to public
        addresses: a name an attacker controls under an allowed domain cannot point the backend at loopback, the
        private network or the cloud metadata service. Label Studio's host and hosts listed by name are the
        operator's own choice and may be anywhere.
        """
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise MediaError(f"could not fetch {redact_url(target.url)}: cannot resolve {target.host} "
                             f"({getattr(e, 'strerror', None) or type(e).__name__})") from None
        ips = list(dict.fromkeys(info[4][0] for info in infos))
        if self._is_ls(target) or host_listed(target.host, self.settings.allowed_hosts):
            return ips
        public = [ip for ip in ips if ipaddress.ip_address(ip.split("%")[0]).is_global]
        if not public:
            raise MediaNotAllowed(f"{redact_url(target.url)}: {target.host} resolves to a non-public address "
                                  f"({', '.join(ips)}); list the host by name in ALLOWED_MEDIA_HOSTS to allow it")
        return public

    def _stream(self, resp: requests.Response, url: str, out: BinaryIO, deadline: float) -> None:
        limit = self.settings.max_media_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise MediaTooLarge(f"{redact_url(url)} is {declared} bytes, over MAX_MEDIA_BYTES={limit}")
        n = 0
        try:
            while True:
                _remaining(url, deadline)
                # read1 returns what has arrived instead of waiting for a full chunk, so a server that trickles
                # bytes meets the deadline instead of holding the request for as long as it keeps sending
                chunk = resp.raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                n += len(chunk)
                if n > limit:
                    raise MediaTooLarge(f"{redact_url(url)} is over MAX_MEDIA_BYTES={limit}")
                out.write(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            # urllib3 raises when the body ends before its Content-Length
            raise MediaError(f"could not fetch {redact_url(url)}: the download broke off after {n} bytes "
                             f"({_reason(e)})") from None


def _remaining(url: str, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaError(f"could not fetch {redact_url(url)}: over the MEDIA_DEADLINE for one download")
    return left


def task_media(task: dict, key: str, media: MediaFetcher | None, what: str = "a media") -> Path:
    """The local file behind a task's `$key` (fetched and cached by `media`).

    Args:
        what: how the error names the expected value, e.g. "an image".

    Raises:
        TaskDataError: no such field, or a value that is not a URL or path.
        LabelloopError: no media access configured; `MediaError`s of the fetch.
    """
    value = task_value(task, key)
    if not isinstance(value, str) or not value.strip():
        raise TaskDataError(f"${key} is not {what} URL or path")
    if media is None:
        raise LabelloopError(f"no media access configured to read ${key}")
    return Path(media.fetch(value))
