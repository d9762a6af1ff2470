"""LabelStudioClient through the real SDK against a small HTTP server that answers like Label Studio's API."""
from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from backends.config import Settings
from backends.exceptions import BadRequest, LabelStudioUnavailable
from backends.ls_client import LabelStudioClient, _reservoir, client_for, parse_project_id, select_annotation
from ops.services import free_port

TOKEN = "legacy-token-abcdef0123456789"


def ann(id: int, updated: str | None, created: str | None = None, cancelled: bool = False) -> dict:
    return {"id": id, "updated_at": updated, "created_at": created or updated, "was_cancelled": cancelled,
            "result": [{"id": f"r{id}", "type": "choices", "value": {"choices": [f"L{id}"]}}]}


# Three pages of two tasks; past the last page Label Studio answers 404, like DRF's paginator.
TASKS = [
    {"id": 1, "data": {"text": "one"}, "annotations": [ann(10, "2024-05-01T10:00:00Z"),
                                                       ann(11, "2024-05-02T10:00:00.5Z")]},
    {"id": 2, "data": {"text": "two"}, "annotations": []},
    {"id": 3, "data": {"text": "three"}, "annotations": [ann(30, "2024-05-03T00:00:00Z", cancelled=True)]},
    {"id": 4, "data": {"text": "four"}, "annotations": [ann(40, "2024-05-01T00:00:00Z"),
                                                        ann(41, "2024-06-01T00:00:00Z", cancelled=True)]},
    {"id": 5, "data": {"text": "five"}, "annotations": [ann(50, "2024-05-01T00:00:00Z")]},
]
PAGE = 2


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def _json(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.requests.append((parts.path, query, self.headers.get("Authorization")))
        if parts.path.startswith("/not-label-studio/"):  # a web page where Label Studio's API was expected
            raw = b"<html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return None
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            return self._json(401, {"detail": "Invalid token."})
        if parts.path == "/api/projects/":
            return self._json(200, {"count": 1, "results": [{"id": 7, "title": "p"}]})
        if parts.path == "/api/projects/7/":
            return self._json(200, {"id": 7, "title": "p", "label_config": "<View><Text name='t'/></View>"})
        if parts.path == "/api/tasks/" and query.get("project") == "7":
            page, size = int(query.get("page", 1)), int(query.get("page_size", PAGE))
            size = min(size, PAGE)  # the server caps page size, so the client must page
            chunk = TASKS[(page - 1) * size: page * size]
            if not chunk:
                return self._json(404, {"detail": "Invalid page."})
            return self._json(200, {"tasks": chunk, "total": len(TASKS), "total_annotations": 6,
                                    "total_predictions": 0})
        self._json(404, {"detail": "Not found."})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int):
        super().__init__(("127.0.0.1", port), _Handler)
        self.requests: list[tuple[str, dict, str | None]] = []


@pytest.fixture(scope="module")
def server():
    srv = _Server(free_port())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def url(server) -> str:
    server.requests.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


# --- parse_project_id

@pytest.mark.parametrize("value, expected", [
    ("12.1763771234", 12), ("12", 12), (" 12 ", 12), (12, 12), ({"id": 7, "title": "x"}, 7), ({"id": "7"}, 7),
    ("3.1763771234", 3),
])
def test_parse_project_id(value, expected):
    assert parse_project_id(value) == expected


@pytest.mark.parametrize("value", [None, "", "abc", "12.x", "1.2.3", "-4", "0", 0, -1, True, 1.5, {"x": 1}, [12]])
def test_parse_project_id_rejects_garbage(value):
    with pytest.raises(BadRequest):
        parse_project_id(value)


# --- select_annotation

def test_select_annotation_picks_newest_non_cancelled():
    task = {"id": 9, "data": {"text": "t"}, "annotations": [
        ann(1, "2024-01-01T00:00:00Z"),
        ann(2, "2024-03-01T00:00:00.123456Z"),
        ann(3, "2024-04-01T00:00:00Z", cancelled=True),
        ann(4, "2024-02-01T00:00:00+00:00"),
    ]}
    got = select_annotation(task)
    assert got is not None
    assert (got.task_id, got.annotation_id, got.data) == (9, 2, {"text": "t"})
    assert got.result == task["annotations"][1]["result"]
    assert got.updated_at == "2024-03-01T00:00:00.123456Z"


def test_select_annotation_ties_fall_back_to_created_at_then_id():
    same = "2024-01-01T00:00:00Z"
    by_created = {"id": 1, "data": {}, "annotations": [ann(5, same, "2023-01-02T00:00:00Z"),
                                                       ann(6, same, "2023-01-01T00:00:00Z")]}
    assert select_annotation(by_created).annotation_id == 5
    by_id = {"id": 1, "data": {}, "annotations": [ann(8, same), ann(9, same), ann(7, same)]}
    assert select_annotation(by_id).annotation_id == 9
    # updated_at compares as time, not as text ("...00.5Z" sorts before "...00Z" as a string)
    timed = {"id": 1, "data": {}, "annotations": [ann(1, "2024-01-01T00:00:00Z"), ann(2, "2024-01-01T00:00:00.5Z")]}
    assert select_annotation(timed).annotation_id == 2


def test_select_annotation_none_when_all_cancelled_or_none():
    assert select_annotation({"id": 1, "data": {}, "annotations": [ann(1, "2024-01-01T00:00:00Z", cancelled=True)]}) \
        is None
    assert select_annotation({"id": 1, "data": {}, "annotations": []}) is None
    assert select_annotation({"id": 1, "data": {}}) is None


# --- the client against the emulated API

def test_auth_headers_for_legacy_token(url):
    assert LabelStudioClient(url, TOKEN).auth_headers() == {"Authorization": f"Token {TOKEN}"}


def test_check_passes_with_the_right_token(server, url):
    LabelStudioClient(url, TOKEN).check()
    assert server.requests[-1][2] == f"Token {TOKEN}"


def test_check_unreachable_port_hides_the_key():
    port = free_port()  # nothing listens there
    client = LabelStudioClient(f"http://127.0.0.1:{port}", TOKEN, timeout=5)
    with pytest.raises(LabelStudioUnavailable) as e:
        client.check()
    msg = str(e.value)
    assert msg.startswith(f"cannot reach Label Studio at http://127.0.0.1:{port}: ")
    assert TOKEN not in msg and TOKEN not in repr(client)


def test_check_refused_key(url):
    with pytest.raises(LabelStudioUnavailable, match=r"Label Studio refused the API key \(401\)") as e:
        LabelStudioClient(url, "wrong-key-987654").check()
    assert "wrong-key-987654" not in str(e.value)


def test_get_label_config(url):
    assert LabelStudioClient(url, TOKEN).get_label_config(7) == "<View><Text name='t'/></View>"
    with pytest.raises(LabelStudioUnavailable, match="404"):
        LabelStudioClient(url, TOKEN).get_label_config(8)


def test_labeled_tasks_pages_and_selects(server, url):
    got = LabelStudioClient(url, TOKEN).labeled_tasks(7)
    assert [(t.task_id, t.annotation_id) for t in got] == [(1, 11), (4, 40), (5, 50)]
    assert got[0].data == {"text": "one"} and got[0].result[0]["value"] == {"choices": ["L11"]}
    task_calls = [q for p, q, _ in server.requests if p == "/api/tasks/"]
    assert [q["page"] for q in task_calls] == ["1", "2", "3", "4"]
    assert all(q["fields"] == "all" and q["project"] == "7" for q in task_calls)


def test_training_tasks_keep_open_ones_but_not_skipped_ones(url):
    labeled, open_tasks = LabelStudioClient(url, TOKEN).training_tasks(7, open_limit=10)
    assert [t.task_id for t in labeled] == [1, 4, 5]
    # task 3's only annotation was cancelled: skipped by an annotator, so neither labeled nor open
    assert open_tasks == [{"id": 2, "data": {"text": "two"}}]
    assert LabelStudioClient(url, TOKEN).training_tasks(7)[1] == []


def test_open_tasks_are_a_bounded_uniform_sample():
    rng = random.Random(0)
    counts = [0] * 10
    for _ in range(2000):
        kept: list[int] = []
        for seen, item in enumerate(range(10), start=1):
            _reservoir(kept, item, seen, 3, rng)
        assert len(kept) == 3 and len(set(kept)) == 3
        for item in kept:
            counts[item] += 1
    # each of the 10 items is kept 3 times in 10 runs on average: 600 of 2,000
    assert all(520 < c < 680 for c in counts), counts


def test_client_for_prefers_setup_values_and_needs_both(url):
    settings = Settings(label_studio_url="http://127.0.0.1:1", api_key="from-env-key")
    client = client_for(settings, url=url, api_key=TOKEN)
    assert client.url == url
    assert client.auth_headers() == {"Authorization": f"Token {TOKEN}"}
    assert client_for(settings).auth_headers() == {"Authorization": "Token from-env-key"}
    with pytest.raises(LabelStudioUnavailable, match="LABEL_STUDIO_URL is not set"):
        client_for(Settings(api_key="k"))
    with pytest.raises(LabelStudioUnavailable, match="LABEL_STUDIO_API_KEY is not set"):
        client_for(Settings(label_studio_url=url))
