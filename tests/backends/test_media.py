"""MediaFetcher against a real HTTP server on 127.0.0.1 that plays Label Studio and a media host."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest

from backends.config import Settings
from backends.exceptions import MediaError, MediaNotAllowed, MediaTooLarge
from backends.media import MediaFetcher, redact_url
from ops.services import free_port
from tests.media_server import MediaServer, serving

TOKEN = "secret-token-0123456789"
LIMIT = 1000
FILES = {
    "a.txt": b"hello from label studio",
    "p1.bin": b"1" * 100,
    "p2.bin": b"2" * 100,
    "p3.bin": b"3" * 100,
}


@pytest.fixture(scope="module")
def server():
    with serving(MediaServer(TOKEN, FILES, big_bytes=LIMIT + 1)) as srv:
        yield srv


@pytest.fixture
def ls(server) -> str:
    server.hits.clear()
    server.auth_seen.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def other(server) -> str:
    """The same server under another host name: a media host that is not Label Studio."""
    return f"http://localhost:{server.server_address[1]}"


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "x.txt").write_text("local content")
    return r


def make(tmp_path: Path, ls: str, root: Path | None = None, auth: bool = True, **over) -> MediaFetcher:
    settings = Settings(label_studio_url=ls, api_key=TOKEN, media_cache_dir=tmp_path / "cache",
                        max_media_bytes=LIMIT, media_timeout=5, local_roots=(root,) if root else (), **over)
    return MediaFetcher(settings, auth=(lambda: {"Authorization": f"Token {TOKEN}"}) if auth else None)


def _tmp_left(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    return [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")] if cache.exists() else []


# --- Label Studio paths and auth

def test_ls_relative_path_is_fetched_with_token(tmp_path, server, ls):
    path = make(tmp_path, ls).fetch("/data/upload/1/a.txt")
    assert path.read_bytes() == FILES["a.txt"]
    assert path.suffix == ".txt"
    assert server.auth_seen == [(ls.split("//")[1], "/data/upload/1/a.txt", f"Token {TOKEN}")]


def test_ls_absolute_url_and_resolve_url_get_token(tmp_path, server, ls):
    fetcher = make(tmp_path, ls)
    assert fetcher.fetch(f"{ls}/data/upload/1/a.txt").read_bytes() == FILES["a.txt"]
    assert fetcher.fetch("/tasks/5/resolve/?fileuri=czM6Ly9iL2suanBn").read_bytes() == b"resolved czM6Ly9iL2suanBn"


def test_ls_without_auth_answers_401(tmp_path, ls):
    with pytest.raises(MediaError, match="401 Unauthorized"):
        make(tmp_path, ls, auth=False).fetch("/data/upload/1/a.txt")


def test_a_file_fetched_with_one_key_is_not_served_from_the_cache_to_another(tmp_path, server, ls):
    # Projects set up with different keys share the cache folder: a key Label Studio refuses must not read
    # what another key fetched.
    settings = Settings(label_studio_url=ls, media_cache_dir=tmp_path / "cache", max_media_bytes=LIMIT,
                        media_timeout=5)
    good = MediaFetcher(settings, auth=lambda: {"Authorization": f"Token {TOKEN}"}, credential=TOKEN)
    assert good.fetch("/data/upload/1/a.txt").read_bytes() == FILES["a.txt"]
    wrong = MediaFetcher(settings, auth=lambda: {"Authorization": "Token not-the-key"}, credential="not-the-key")
    with pytest.raises(MediaError, match="401"):
        wrong.fetch("/data/upload/1/a.txt")
    again = MediaFetcher(settings, auth=lambda: {"Authorization": f"Token {TOKEN}"}, credential=TOKEN)
    hits = server.hits["/data/upload/1/a.txt"]
    assert again.fetch("/data/upload/1/a.txt").read_bytes() == FILES["a.txt"]
    assert server.hits["/data/upload/1/a.txt"] == hits  # the same key reads its cached copy


def test_allowed_host_is_fetched_without_token(tmp_path, server, ls, other):
    fetcher = make(tmp_path, ls, allowed_hosts=("localhost",))
    assert fetcher.fetch(f"{other}/public/p1.bin").read_bytes() == FILES["p1.bin"]
    assert [a for _, _, a in server.auth_seen] == [None]


def test_other_host_is_blocked_before_any_request(tmp_path, server, ls, other):
    with pytest.raises(MediaNotAllowed, match="ALLOWED_MEDIA_HOSTS"):
        make(tmp_path, ls).fetch(f"{other}/public/p1.bin")
    # same host name but another port is another origin: no token, and not allowed either
    with pytest.raises(MediaNotAllowed):
        make(tmp_path, ls).fetch(f"http://127.0.0.1:{free_port()}/data/upload/1/a.txt")
    assert server.hits == Counter()


def test_allow_list_wildcard(tmp_path, ls):
    fetcher = make(tmp_path, ls, allowed_hosts=("*.media.invalid",))
    for url in ("http://evil.invalid/a.jpg", "http://media.invalid/a.jpg", "http://evilmedia.invalid/a.jpg",
                "http://cdn.media.invalid.evil.test/a.jpg"):
        with pytest.raises(MediaNotAllowed):
            fetcher.fetch(url)
    # a subdomain passes the guard and fails only because .invalid never resolves
    for url in ("http://cdn.media.invalid:9/a.jpg", "http://a.b.media.invalid:9/a.jpg"):
        with pytest.raises(MediaError) as e:
            fetcher.fetch(url)
        assert type(e.value) is MediaError


def test_redirect_off_the_list_is_blocked(tmp_path, server, ls):
    with pytest.raises(MediaNotAllowed, match="evil.invalid"):
        make(tmp_path, ls).fetch(f"{ls}/redirect?to=http://evil.invalid/steal")
    assert server.hits["/redirect"] == 1


def test_redirect_to_allowed_host_drops_token(tmp_path, server, ls, other):
    fetcher = make(tmp_path, ls, allowed_hosts=("localhost",))
    # from Label Studio (token sent) to the media host (token not sent)
    target = f"{other}/public/p2.bin"
    path = fetcher.fetch(f"{ls}/data/upload/1/a.txt")  # warm: Label Studio gets the token
    assert path.exists()
    server.auth_seen.clear()
    assert fetcher.fetch(f"{ls}/tasks/7/presign/?to={target}").read_bytes() == FILES["p2.bin"]
    assert [(h.split(":")[0], p, a) for h, p, a in server.auth_seen] == [
        ("127.0.0.1", "/tasks/7/presign/", f"Token {TOKEN}"), ("localhost", "/public/p2.bin", None)]


def test_too_many_redirects(tmp_path, ls):
    with pytest.raises(MediaError, match="more than 5 redirects"):
        make(tmp_path, ls).fetch(f"{ls}/loop")


# --- local files

def test_file_url_inside_root_is_read_in_place(tmp_path, root, ls):
    path = make(tmp_path, ls, root).fetch((root / "sub" / "x.txt").as_uri())
    assert path == (root / "sub" / "x.txt").resolve()
    assert path.read_text() == "local content"


def test_file_url_outside_roots_is_blocked(tmp_path, root, ls):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    fetcher = make(tmp_path, ls, root)
    with pytest.raises(MediaNotAllowed):
        fetcher.fetch(outside.as_uri())
    with pytest.raises(MediaNotAllowed):
        fetcher.fetch(f"file://{root}/../secret.txt")
    with pytest.raises(MediaNotAllowed):
        make(tmp_path, ls).fetch((root / "sub" / "x.txt").as_uri())  # no roots at all


def test_missing_file_inside_root_is_a_media_error(tmp_path, root, ls):
    with pytest.raises(MediaError, match="no such file") as e:
        make(tmp_path, ls, root).fetch((root / "nope.txt").as_uri())
    assert type(e.value) is MediaError


def test_symlink_escaping_the_root_is_blocked(tmp_path, root, ls):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "sub" / "link.txt").symlink_to(outside)
    fetcher = make(tmp_path, ls, root)
    with pytest.raises(MediaNotAllowed):
        fetcher.fetch((root / "sub" / "link.txt").as_uri())
    with pytest.raises(MediaNotAllowed):
        fetcher.fetch("/data/local-files/?d=sub/link.txt")


def test_absolute_path_under_root(tmp_path, root, ls):
    assert make(tmp_path, ls, root).fetch(str(root / "sub" / "x.txt")).read_text() == "local content"


def test_local_files_read_from_disk_when_mounted(tmp_path, server, root, ls):
    path = make(tmp_path, ls, root).fetch("/data/local-files/?d=sub/x.txt")
    assert path.read_text() == "local content"
    assert server.hits == Counter()


def test_local_files_traversal_is_blocked(tmp_path, server, root, ls):
    (tmp_path / "secret.txt").write_text("secret")
    fetcher = make(tmp_path, ls, root)
    # blocked whether or not the target exists here (a missing one must not be asked of Label Studio either)
    for d in ("../secret.txt", "sub/../../secret.txt", "%2E%2E/secret.txt", str(tmp_path / "secret.txt"),
              "../../no/such/file.txt"):
        with pytest.raises(MediaNotAllowed):
            fetcher.fetch(f"/data/local-files/?d={d}")
    assert server.hits == Counter()


def test_local_files_not_mounted_here_come_from_label_studio(tmp_path, server, root, ls):
    path = make(tmp_path, ls, root).fetch("/data/local-files/?d=elsewhere/y.txt")
    assert path.read_bytes() == b"served by label studio: elsewhere/y.txt"
    assert server.hits["/data/local-files/"] == 1


# --- cloud and odd values

@pytest.mark.parametrize("url", ["s3://bucket/key.jpg", "gs://bucket/a.wav", "azure-blob://c/a.png"])
def test_cloud_schemes_point_to_label_studio(tmp_path, ls, url):
    with pytest.raises(MediaError, match="presigned") as e:
        make(tmp_path, ls).fetch(url)
    assert type(e.value) is MediaError


def test_inline_text_is_not_fetched(tmp_path, ls):
    with pytest.raises(MediaError, match="neither a URL nor"):
        make(tmp_path, ls).fetch("hello world")


def test_is_url(tmp_path, root, ls):
    fetcher = make(tmp_path, ls, root)
    for value in ("http://x/a.jpg", "https://x", "file:///a", "s3://b/k", "/data/upload/1/a.jpg",
                  "/tasks/3/resolve/?fileuri=abc", str(root / "sub" / "x.txt")):
        assert fetcher.is_url(value), value
    for value in ("hello world", "", "/r/python is great", "a/b/c.jpg", "see http://x/a", None):
        assert not fetcher.is_url(value), value


# --- cache

def test_cache_hit_does_not_download_again(tmp_path, server, ls):
    fetcher = make(tmp_path, ls)
    first = fetcher.fetch("/data/upload/1/a.txt")
    second = fetcher.fetch("/data/upload/1/a.txt")
    assert first == second and second.read_bytes() == FILES["a.txt"]
    assert server.hits["/data/upload/1/a.txt"] == 1
    # another fetcher (another process) sharing the folder hits the cache too
    assert make(tmp_path, ls).fetch(f"{ls}/data/upload/1/a.txt") == first
    assert server.hits["/data/upload/1/a.txt"] == 1


def test_cache_is_bounded_in_bytes_and_evicts_least_recently_used(tmp_path, server, ls):
    fetcher = make(tmp_path, ls, media_cache_bytes=250)
    p1 = fetcher.fetch("/data/upload/1/p1.bin")
    time.sleep(0.02)
    p2 = fetcher.fetch("/data/upload/1/p2.bin")
    time.sleep(0.02)
    assert fetcher.fetch("/data/upload/1/p1.bin") == p1  # a hit makes p1 the most recently used
    time.sleep(0.02)
    p3 = fetcher.fetch("/data/upload/1/p3.bin")
    assert p1.exists() and p3.exists() and not p2.exists()
    assert fetcher.cache.size() == 200
    fetcher.fetch("/data/upload/1/p2.bin")
    assert server.hits["/data/upload/1/p2.bin"] == 2
    assert fetcher.cache.size() <= 250


def test_file_larger_than_cache_budget_is_still_returned(tmp_path, ls):
    fetcher = make(tmp_path, ls, media_cache_bytes=50)
    assert fetcher.fetch("/data/upload/1/p1.bin").read_bytes() == FILES["p1.bin"]


# --- limits and errors

def test_declared_size_over_limit(tmp_path, ls):
    with pytest.raises(MediaTooLarge, match="MAX_MEDIA_BYTES"):
        make(tmp_path, ls).fetch(f"{ls}/big")
    assert _tmp_left(tmp_path) == []


def test_streamed_size_over_limit(tmp_path, ls):
    with pytest.raises(MediaTooLarge):
        make(tmp_path, ls).fetch(f"{ls}/big-stream")
    assert _tmp_left(tmp_path) == []
    assert not any((tmp_path / "cache").iterdir())


def test_local_file_over_limit(tmp_path, root, ls):
    (root / "big.bin").write_bytes(b"x" * (LIMIT + 1))
    with pytest.raises(MediaTooLarge):
        make(tmp_path, ls, root).fetch(str(root / "big.bin"))


def test_body_shorter_than_content_length_is_not_cached(tmp_path, server, ls):
    fetcher = make(tmp_path, ls)
    for _ in range(2):
        with pytest.raises(MediaError, match="broke off"):
            fetcher.fetch(f"{ls}/short")
    assert server.hits["/short"] == 2
    assert _tmp_left(tmp_path) == []


def test_404_message_is_readable_and_leaks_nothing(tmp_path, ls):
    with pytest.raises(MediaError) as e:
        make(tmp_path, ls).fetch("/data/upload/1/nope.png?X-Amz-Signature=SIGSECRET")
    msg = str(e.value)
    assert msg == f"could not fetch {ls}/data/upload/1/nope.png?[redacted]: 404 Not Found"
    assert TOKEN not in msg and "SIGSECRET" not in msg


def test_connection_error_message_leaks_nothing(tmp_path):
    port = free_port()  # nothing listens there
    fetcher = make(tmp_path, f"http://127.0.0.1:{port}")
    with pytest.raises(MediaError, match="could not fetch") as e:
        fetcher.fetch("/data/upload/1/a.png?sig=SIGSECRET")
    assert "SIGSECRET" not in str(e.value) and TOKEN not in str(e.value)


def test_relative_path_without_label_studio_url(tmp_path):
    with pytest.raises(MediaError, match="LABEL_STUDIO_URL"):
        make(tmp_path, "").fetch("/data/upload/1/a.txt")


def test_redact_url():
    assert redact_url("https://u:pw@h.example/a/b.jpg?sig=1#frag") == "https://h.example/a/b.jpg?[redacted]"
    assert redact_url("http://h/a.jpg") == "http://h/a.jpg"


def test_fetch_text(tmp_path, root, ls):
    fetcher = make(tmp_path, ls, root)
    assert fetcher.fetch_text("/data/upload/1/a.txt") == FILES["a.txt"].decode()
    (root / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(MediaError, match="not utf-8 text"):
        fetcher.fetch_text(str(root / "latin.txt"))
    assert fetcher.fetch_text(str(root / "latin.txt"), encoding="latin-1") == "caf\xe9"


# --- the token never leaves for another host (parser differentials, user-info, traversal)

def _token_sent_to(server, host: str) -> list[str]:
    return [p for h, p, a in server.auth_seen if h.split(":")[0] == host and a is not None]


def test_backslash_userinfo_url_never_carries_the_token_elsewhere(tmp_path, server, ls, other):
    port = server.server_address[1]
    # urllib reads host 127.0.0.1 (Label Studio), urllib3 connects to localhost: refused before any request
    url = f"http://localhost:{port}\\@127.0.0.1:{port}/data/upload/1/a.txt"
    with pytest.raises(MediaNotAllowed, match="backslash"):
        make(tmp_path, ls).fetch(url)
    assert server.auth_seen == []


def test_backslash_userinfo_in_a_redirect_never_carries_the_token(tmp_path, server, ls):
    port = server.server_address[1]
    target = f"http://localhost:{port}\\@127.0.0.1:{port}/data/upload/1/a.txt"
    with pytest.raises(MediaNotAllowed):
        make(tmp_path, ls).fetch(f"{ls}/tasks/7/presign/?to={quote(target, safe='')}")
    assert _token_sent_to(server, "localhost") == []
    assert [p for _, p, _ in server.auth_seen] == ["/tasks/7/presign/"]


@pytest.mark.parametrize("url", [
    "http://user@{ls}/data/upload/1/a.txt",
    "http://user:pw@{ls}/data/upload/1/a.txt",
    "http://{ls}@evil.invalid/data/upload/1/a.txt",
    "http://{ls}/data/upload/1/a\t.txt",
    "http://{ls} /data/upload/1/a.txt",
])
def test_userinfo_and_odd_characters_are_refused(tmp_path, server, ls, url):
    with pytest.raises(MediaNotAllowed):
        make(tmp_path, ls).fetch(url.format(ls=ls.split("//")[1]))
    assert server.auth_seen == []


@pytest.mark.parametrize("path", ["/data/upload/../../api/projects/1/", "/data/upload/%2e%2e/%2E%2E/api/projects/1/",
                                  "/data/upload/1/./a.txt"])
def test_paths_cannot_climb_out_of_the_media_routes(tmp_path, server, ls, path):
    for value in (path, ls + path):
        with pytest.raises(MediaNotAllowed, match="segments"):
            make(tmp_path, ls).fetch(value)
    assert server.auth_seen == []


def test_label_studio_api_gets_no_token(tmp_path, server, ls):
    with pytest.raises(MediaError, match="404"):
        make(tmp_path, ls).fetch(f"{ls}/api/projects/1/")
    assert server.auth_seen == [(ls.split("//")[1], "/api/projects/1/", None)]


def test_token_goes_to_media_routes_under_a_label_studio_sub_path(tmp_path):
    fetcher = make(tmp_path, "http://ls.example:8080/studio")
    parse = __import__("backends.media", fromlist=["parse_http_url"]).parse_http_url
    assert fetcher._gets_token(parse("http://ls.example:8080/studio/data/upload/1/a.png"))
    assert fetcher._gets_token(parse("http://ls.example:8080/studio/tasks/3/resolve/?fileuri=eA=="))
    assert not fetcher._gets_token(parse("http://ls.example:8080/studio/api/projects/1/"))
    assert not fetcher._gets_token(parse("http://ls.example:8080/data/upload/1/a.png"))
    assert not fetcher._gets_token(parse("http://ls.example:8081/studio/data/upload/1/a.png"))


def test_a_trickling_download_meets_the_overall_deadline(tmp_path, ls):
    fetcher = make(tmp_path, ls, media_deadline=1.0)
    start = time.monotonic()
    with pytest.raises(MediaError, match="MEDIA_DEADLINE"):
        fetcher.fetch(f"{ls}/trickle")
    assert time.monotonic() - start < 4
    assert _tmp_left(tmp_path) == []


# --- DNS: resolved once, checked, and connected to exactly what was checked

@pytest.fixture
def fake_dns(monkeypatch):
    """Answers for made-up names: each lookup pops the next address (the last one repeats)."""
    import socket

    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}
    calls: Counter[str] = Counter()

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            calls[host] += 1
            ips = answers[host]
            ip = ips.pop(0) if len(ips) > 1 else ips[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, calls


def test_a_wildcard_allowed_name_cannot_point_at_private_addresses(tmp_path, server, ls, fake_dns):
    answers, _ = fake_dns
    port = server.server_address[1]
    for ip in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.7"):
        answers["cdn.media.test"] = [ip]
        with pytest.raises(MediaNotAllowed, match="non-public address"):
            make(tmp_path, ls, allowed_hosts=("*.media.test",)).fetch(f"http://cdn.media.test:{port}/public/p1.bin")
    assert server.auth_seen == []


def test_a_name_listed_by_the_operator_is_connected_to_the_address_that_was_checked(tmp_path, server, ls, fake_dns):
    answers, calls = fake_dns
    port = server.server_address[1]
    # the first answer is where the server is; a second lookup would get an address where nothing listens
    answers["media.test"] = ["127.0.0.1", "127.0.0.2"]
    fetcher = make(tmp_path, ls, allowed_hosts=("media.test",))
    assert fetcher.fetch(f"http://media.test:{port}/public/p3.bin").read_bytes() == FILES["p3.bin"]
    assert calls["media.test"] == 1
    assert [(h, a) for h, _, a in server.auth_seen] == [(f"media.test:{port}", None)]


def test_through_a_proxy_the_proxy_resolves(tmp_path, server, ls, monkeypatch):
    port = server.server_address[1]
    # the test server answers proxy-style requests (absolute URL in the request line) like any other
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fetcher = make(tmp_path, ls, allowed_hosts=("*.unresolvable.test",))
    assert fetcher.fetch("http://cdn.unresolvable.test/public/p1.bin").read_bytes() == FILES["p1.bin"]
