"""Media URLs as the HTTP client reads them: one parser for the check and the request, the allow-list, and
connections pinned to the addresses that were checked (no second DNS answer between check and connect)."""
from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .exceptions import MediaError, MediaNotAllowed

_FORBIDDEN_URL_CHARS = re.compile(r"[\\\x00-\x20\x7f]")


def redact_url(url: str) -> str:
    """`url` without credentials, query string or fragment (presigned URLs carry signatures in the query).

    Args:
        url: any URL or path.

    Returns:
        The URL safe to show in a log line or an error message.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + ("?[redacted]" if parts.query else "")


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def host_listed(host: str, patterns: tuple[str, ...]) -> bool:
    """`host` is named in the allow-list itself, not only matched by a wildcard."""
    return any(p.strip().lower().rstrip(".") == host for p in patterns)


@dataclass(frozen=True)
class HttpTarget:
    """An http(s) URL as the HTTP client will see it: checked once, then requested from these parts only."""

    scheme: str
    host: str  # lower case, no trailing dot, IPv6 without brackets
    port: int
    path: str  # with dot segments already refused
    query: str

    @property
    def origin(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        netloc = host if self.port == default else f"{host}:{self.port}"
        return urlunsplit((self.scheme, netloc, self.path, self.query, ""))


def parse_http_url(url: str) -> HttpTarget:
    """Parse an http(s) URL the way the HTTP client (urllib3) does, refusing every form two parsers read apart.

    Backslashes, whitespace, control characters and user-info (`user@host`) are refused outright: they are where
    urllib's and urllib3's readings of a host differ (`http://a\\@b/` is host b to one, host a to the other), and a
    media URL never needs them. Dot segments are refused too, so a path cannot climb out of a media route.

    Raises:
        MediaNotAllowed: a refused form or scheme.
        MediaError: not a URL at all.
    """
    if _FORBIDDEN_URL_CHARS.search(url):
        raise MediaNotAllowed(f"{redact_url(url)}: backslashes, spaces and control characters are not allowed in URLs")
    try:
        parsed = parse_url(url)
        split = urlsplit(url)
        port = parsed.port
    except (LocationParseError, ValueError):
        raise MediaError(f"{redact_url(url)}: not a valid URL") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise MediaNotAllowed(f"{redact_url(url)}: only http(s) URLs may be fetched")
    if parsed.auth is not None or "@" in split.netloc:
        raise MediaNotAllowed(f"{redact_url(url)}: credentials in a URL (user@host) are not allowed")
    host = (parsed.host or "").strip("[]").lower().rstrip(".")
    if not host or host != (split.hostname or "").lower().rstrip("."):
        raise MediaNotAllowed(f"{redact_url(url)}: not a valid URL host")
    segments = unquote(split.path).split("/")
    if "." in segments or ".." in segments:
        raise MediaNotAllowed(f"{redact_url(url)}: '.' and '..' path segments are not allowed")
    return HttpTarget(scheme, host, port or (443 if scheme == "https" else 80), split.path or "/", split.query)


PINS = threading.local()


def _pinned(host: str) -> list[str] | None:
    return getattr(PINS, "hosts", {}).get(host)


class _PinnedConnection(urllib3.connection.HTTPConnection):
    """Connects to the addresses the fetcher checked for this host, never to a second DNS answer."""

    def _new_conn(self) -> socket.socket:
        ips = _pinned(self._dns_host.strip("[]").lower().rstrip("."))
        if ips is None:  # a proxy or a host the fetcher did not check: urllib3's own way
            return super()._new_conn()
        error: OSError | None = None
        for ip in ips:
            try:
                return urllib3.util.connection.create_connection(
                    (ip, self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except OSError as e:
                error = e
        raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {error}")


class _PinnedHTTPSConnection(_PinnedConnection, urllib3.connection.HTTPSConnection):
    pass


class PinnedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        classes = {"http": (urllib3.HTTPConnectionPool, _PinnedConnection),
                   "https": (urllib3.HTTPSConnectionPool, _PinnedHTTPSConnection)}
        self.poolmanager.pool_classes_by_scheme = {
            scheme: type(f"Pinned{pool.__name__}", (pool,), {"ConnectionCls": conn})
            for scheme, (pool, conn) in classes.items()}
