"""media_key: a stat-cheap key of a fetched file's content that two different contents never share."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backends import media_identity
from backends.config import Settings
from backends.media import MediaFetcher
from backends.media_identity import VALIDATOR_XATTR, file_sha256, media_key, response_validator

NOW = 1_700_000_000.0


@pytest.fixture
def xattrs(tmp_path):
    """Skip where the file system takes no user extended attributes (downloads are then keyed by content)."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError as e:
        pytest.skip(f"no user extended attributes on {tmp_path}: {e}")


@pytest.fixture
def later(monkeypatch):
    """The clock an hour ahead: no file written here is within the racy window (a ctime cannot be set)."""
    now = media_identity.time.time
    monkeypatch.setattr(media_identity.time, "time", lambda: now() + 3600)


def test_validators_name_one_content_or_nothing():
    date = formatdate(NOW, usegmt=True)
    assert "etag" in response_validator({"etag": '"abc"'})
    assert response_validator({"etag": 'W/"abc"'}) is None  # weak: may stay across byte changes
    assert "last_modified" in response_validator({"last-modified": formatdate(NOW - 61, usegmt=True), "date": date})
    # a Last-Modified within a minute of the response's Date may cover two versions of the file
    assert response_validator({"last-modified": formatdate(NOW - 5, usegmt=True), "date": date}) is None
    assert response_validator({"last-modified": "garbage", "date": date}) is None
    assert response_validator({"content-length": "10"}) is None  # a size alone names no content


def test_local_file_key_follows_path_and_content(tmp_path, later):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1" * 100)
    b.write_bytes(b"1" * 100)
    key = media_key(a)
    assert key.startswith("media-") and key == media_key(a)
    assert media_key(b) != key  # same bytes, another file: another key (never a shared one)
    a.write_bytes(b"2" * 100)  # rewritten in place, same size
    assert media_key(a) != key


def test_recently_changed_local_file_is_keyed_by_content(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"1" * 100)
    first = media_key(a)
    assert first == "content-" + file_sha256(a)
    a.write_bytes(b"2" * 100)  # within one timestamp tick a stat key could not tell these apart
    assert media_key(a) == "content-" + file_sha256(a) != first


def test_downloads_are_keyed_by_url_and_validator_else_content(tmp_path, xattrs):
    fetcher = MediaFetcher(Settings(media_cache_dir=tmp_path / "cache"))
    fetcher.cache.root.mkdir()
    cached = fetcher.cache.root / "0123abcd.jpg"
    cached.write_bytes(b"x" * 50)
    assert media_key(cached, fetcher) == "content-" + file_sha256(cached)  # no validator: the content
    os.setxattr(cached, VALIDATOR_XATTR, b'{"etag": "\\"v1\\""}')
    v1 = media_key(cached, fetcher)
    assert v1.startswith("media-")
    os.setxattr(cached, VALIDATOR_XATTR, b'{"etag": "\\"v2\\""}')
    assert media_key(cached, fetcher) != v1
    # a file outside the cache folder is never taken for a download, whatever its attributes
    assert media_key(cached, MediaFetcher(Settings(media_cache_dir=tmp_path / "other"))) != media_key(cached, fetcher)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body, etag = self.server.bodies[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def _server(bodies: dict[str, tuple[bytes, str | None]]):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.bodies = bodies
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_fetch_keeps_the_etag_with_the_downloaded_file(tmp_path, xattrs):
    bodies = {"/data/upload/1/a.jpg": (b"a" * 30, '"etag-a"'), "/data/upload/1/b.jpg": (b"b" * 30, None)}
    with _server(bodies) as ls:
        fetcher = MediaFetcher(Settings(label_studio_url=ls, media_cache_dir=tmp_path / "cache"))
        a = fetcher.fetch("/data/upload/1/a.jpg")
        b = fetcher.fetch("/data/upload/1/b.jpg")
        key_a = media_key(a, fetcher)
        assert os.getxattr(a, VALIDATOR_XATTR) == b'{"etag": "\\"etag-a\\""}'
        assert key_a.startswith("media-") and media_key(b, fetcher) == "content-" + file_sha256(b)
        # another Label Studio's upload of the same name (another instance: another URL, another cache file)
        other = MediaFetcher(Settings(label_studio_url=ls.replace("127.0.0.1", "localhost"),
                                      media_cache_dir=tmp_path / "cache"))
        assert media_key(other.fetch("/data/upload/1/a.jpg"), other) != key_a
        # the file changed on the server: once downloaded again, the new ETag makes a new key
        bodies["/data/upload/1/a.jpg"] = (b"c" * 30, '"etag-c"')
        a.unlink()
        assert media_key(fetcher.fetch("/data/upload/1/a.jpg"), fetcher) != key_a
