"""A real HTTP server on 127.0.0.1 that plays Label Studio's media routes and a plain media host, with the
misbehaving answers media fetching must survive (redirects, loops, oversized, trickling and broken bodies).

Shared by tests/backends/test_media.py (MediaFetcher) and tests/e2e/test_fuzz.py (every backend as a process).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ops.services import free_port


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client gave up (a size limit, a deadline): nothing to answer any more
            pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        self.server.hits[path] += 1
        self.server.auth_seen.append((self.headers.get("Host", ""), path, self.headers.get("Authorization")))
        if path.startswith(("/data/", "/tasks/")):
            return self._label_studio_media(path, query)
        if path.startswith("/public/"):
            return self._file(path)
        if path == "/redirect":
            return self._send(302, headers={"Location": query.get("to", ["/"])[0]})
        if path == "/loop":
            return self._send(302, headers={"Location": "/loop"})
        if path == "/trickle":
            return self._trickle()
        if path == "/big":
            return self._send(200, b"x" * self.server.big_bytes)
        if path == "/big-stream":
            # no Content-Length: the size is only known by counting
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * (self.server.big_bytes * 3))
            self.close_connection = True
            return
        if path == "/short":
            self._send(200, b"only ten b", headers={"Content-Length": "500"})
            self.close_connection = True
            return
        self._send(404, b"nothing here")

    def _label_studio_media(self, path: str, query: dict[str, list[str]]) -> None:
        """Label Studio's media routes: the token is needed."""
        if self.headers.get("Authorization") != f"Token {self.server.token}":
            return self._send(401, b'{"detail": "Authentication credentials were not provided."}')
        if path == "/data/local-files/":
            return self._send(200, b"served by label studio: " + query.get("d", [""])[0].encode())
        if path.startswith("/tasks/") and "to" in query:
            # Label Studio's presign route answers with a redirect to the storage
            return self._send(302, headers={"Location": query["to"][0]})
        if path.startswith("/tasks/"):
            return self._send(200, b"resolved " + query.get("fileuri", [""])[0].encode())
        return self._file(path)

    def _file(self, path: str) -> None:
        body = self.server.files.get(path.rsplit("/", 1)[-1])
        return self._send(200, body) if body is not None else self._send(404, b"not found")

    def _trickle(self) -> None:
        # one byte at a time, each well within a read timeout, for much longer than a download's deadline
        n, delay = self.server.trickle
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        for _ in range(n):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(delay)


class MediaServer(ThreadingHTTPServer):
    """The server; it records every request's path (`hits`) and (host, path, Authorization) (`auth_seen`).

    Args:
        token: the API token Label Studio's media routes (/data/..., /tasks/...) want.
        files: bodies by file name, served under those routes and under /public/ (no token).
        big_bytes: the size of /big (declared) and a third of /big-stream (undeclared).
        trickle: /trickle's (bytes, seconds between two bytes).
        port: where to listen on 127.0.0.1 (default a free port).
    """

    daemon_threads = True

    def __init__(self, token: str, files: dict[str, bytes], big_bytes: int, trickle: tuple[int, float] = (100, 0.1),
                 port: int | None = None):
        super().__init__(("127.0.0.1", port or free_port()), _Handler)
        self.token, self.files, self.big_bytes, self.trickle = token, files, big_bytes, trickle
        self.hits: Counter[str] = Counter()
        self.auth_seen: list[tuple[str, str, str | None]] = []

    @property
    def port(self) -> int:
        return self.server_address[1]


@contextmanager
def serving(server: MediaServer) -> Iterator[MediaServer]:
    """Serve in a daemon thread while the block runs; then shut down and close."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
