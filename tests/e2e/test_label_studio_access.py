"""The backends' access to a REAL Label Studio: API keys (legacy token and personal access token), the annotations
training reads, and media uploaded to Label Studio, fetched through the SSRF-guarded `MediaFetcher`."""
from __future__ import annotations

import http.server
import io
import threading
import time

import jwt
import pytest
import requests

from backends.config import Settings
from backends.exceptions import LabelStudioUnavailable, MediaError, MediaNotAllowed
from backends.ls_client import LabelStudioClient
from backends.media import MediaFetcher
from ops.services import free_port
from tests.e2e.label_studio import upload

pytestmark = pytest.mark.e2e

TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="Location"/>
    <Choice value="Human"/>
    <Choice value="Numeric"/>
  </Choices>
</View>"""

IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="kind" toName="image" choice="single">
    <Choice value="Dot"/>
    <Choice value="Blank"/>
  </Choices>
</View>"""


def _choice(label: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def _labels(labeled) -> str:
    return labeled.result[0]["value"]["choices"][0]


@pytest.fixture(scope="module")
def sdk(label_studio):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


@pytest.fixture(scope="module")
def text_project(sdk):
    """A Text+Choices project whose tasks cover every annotation case training must handle.

    Returns:
        (project id, {case name: task id}, {case name: annotation id training must pick})
    """
    project = sdk.projects.create(title="labelloop e2e: annotations", label_config=TEXT_CONFIG)
    cases = ["single", "updated", "cancelled_only", "cancelled_newer", "unlabeled"]
    imported = sdk.projects.import_tasks(project.id, request=[{"text": f"task {c}"} for c in cases],
                                         return_task_ids=True)
    by_text = {t.data["text"]: t.id for t in sdk.tasks.list(project=project.id)}
    assert imported.task_count == len(cases)
    tasks = {c: by_text[f"task {c}"] for c in cases}
    expect: dict[str, int] = {}

    expect["single"] = sdk.annotations.create(tasks["single"], result=_choice("Location")).id

    # two annotations; the OLDER one (lower id, earlier created_at) is then edited, so it is the newest by updated_at
    first = sdk.annotations.create(tasks["updated"], result=_choice("Location"))
    time.sleep(0.05)
    sdk.annotations.create(tasks["updated"], result=_choice("Human"))
    time.sleep(0.05)
    sdk.annotations.update(first.id, result=_choice("Numeric"))
    expect["updated"] = first.id

    sdk.annotations.create(tasks["cancelled_only"], result=[], was_cancelled=True)

    expect["cancelled_newer"] = sdk.annotations.create(tasks["cancelled_newer"], result=_choice("Human")).id
    time.sleep(0.05)
    sdk.annotations.create(tasks["cancelled_newer"], result=[], was_cancelled=True)

    yield project.id, tasks, expect
    sdk.projects.delete(project.id)


def _cancelled_supported(sdk, task_id: int) -> bool:
    return any(a.get("was_cancelled") for a in (sdk.tasks.get(task_id).annotations or []))


# ---------------------------------------------------------------------------------------------------------------
# 1. legacy token: the annotations training reads
# ---------------------------------------------------------------------------------------------------------------


def test_legacy_token_labeled_tasks_picks_newest_non_cancelled_annotation(label_studio, sdk, text_project):
    project_id, tasks, expect = text_project
    client = LabelStudioClient(label_studio.url, label_studio.token)
    client.check()
    assert client.auth_headers() == {"Authorization": f"Token {label_studio.token}"}
    assert "<Choices" in client.get_label_config(project_id)

    # Label Studio's own view of the "updated" task: two annotations, the edited older one updated last
    raw = sorted(sdk.tasks.get(tasks["updated"]).annotations, key=lambda a: a["id"])
    assert len(raw) == 2
    assert raw[0]["updated_at"] > raw[1]["updated_at"], raw

    labeled = {t.task_id: t for t in client.labeled_tasks(project_id)}
    by_case = {case: labeled.get(task_id) for case, task_id in tasks.items()}

    assert by_case["unlabeled"] is None
    assert by_case["single"].annotation_id == expect["single"]
    assert _labels(by_case["single"]) == "Location"
    assert by_case["single"].data == {"text": "task single"}
    assert by_case["updated"].annotation_id == expect["updated"]
    assert _labels(by_case["updated"]) == "Numeric"

    if not _cancelled_supported(sdk, tasks["cancelled_only"]):
        pytest.skip("Label Studio ignored was_cancelled=True when creating an annotation through the API")
    assert by_case["cancelled_only"] is None
    # a skip made after a real annotation does not hide that annotation
    assert by_case["cancelled_newer"].annotation_id == expect["cancelled_newer"]
    assert _labels(by_case["cancelled_newer"]) == "Human"
    assert set(labeled) == {tasks["single"], tasks["updated"], tasks["cancelled_newer"]}


# ---------------------------------------------------------------------------------------------------------------
# 2. wrong keys
# ---------------------------------------------------------------------------------------------------------------


def test_wrong_legacy_token_is_refused_without_leaking_it(label_studio):
    bad = "0123456789abcdef0123456789abcdef01234567"
    client = LabelStudioClient(label_studio.url, bad)
    with pytest.raises(LabelStudioUnavailable) as err:
        client.check()
    message = str(err.value)
    assert "refused the API key" in message and "401" in message, message
    assert bad not in message


def test_forged_personal_access_token_is_refused_without_leaking_it(label_studio):
    # a well-formed refresh token signed with the wrong key: the exchange for an access token fails
    forged = jwt.encode({"token_type": "refresh", "exp": int(time.time()) + 3600, "iat": int(time.time()),
                         "jti": "0" * 32, "user_id": 1}, "not-label-studios-signing-key-0123456789", algorithm="HS256")
    client = LabelStudioClient(label_studio.url, forged)
    with pytest.raises(LabelStudioUnavailable) as err:
        client.check()
    message = str(err.value)
    assert "refused the API key" in message, message
    assert forged not in message


def test_expired_personal_access_token_is_refused_without_leaking_it(label_studio):
    expired = jwt.encode({"token_type": "refresh", "exp": int(time.time()) - 60, "user_id": 1}, "k" * 32,
                         algorithm="HS256")
    with pytest.raises(LabelStudioUnavailable) as err:
        LabelStudioClient(label_studio.url, expired).check()
    message = str(err.value)
    assert "refused the API key" in message and "expired" in message, message
    assert expired not in message


def test_unreachable_label_studio_is_reported(label_studio):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LabelStudioUnavailable, match="cannot reach Label Studio"):
        LabelStudioClient(url, label_studio.token, timeout=5).check()


# ---------------------------------------------------------------------------------------------------------------
# 3. personal access tokens
# ---------------------------------------------------------------------------------------------------------------


def _personal_access_token(ls) -> str:
    """Enable JWT API tokens for the organization (keeping legacy tokens on) and create one for the user."""
    headers = {"Authorization": f"Token {ls.token}"}
    r = requests.post(f"{ls.url}/api/jwt/settings", headers=headers, timeout=30,
                      json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True})
    if r.status_code == 404:
        pytest.skip("this Label Studio has no /api/jwt/settings: personal access tokens are not available")
    assert r.status_code in (200, 201), r.text
    assert r.json()["api_tokens_enabled"] is True
    r = requests.post(f"{ls.url}/api/token/", headers=headers, timeout=30)
    if r.status_code == 409:
        # the user already has one (Label Studio allows one at a time): revoke it and create another
        for listed in requests.get(f"{ls.url}/api/token/", headers=headers, timeout=30).json():
            requests.post(f"{ls.url}/api/token/blacklist/", headers=headers, json={"refresh": listed["token"]},
                          timeout=30)
        r = requests.post(f"{ls.url}/api/token/", headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def pat(label_studio) -> str:
    return _personal_access_token(label_studio)


def test_personal_access_token_reads_tasks_and_gives_a_bearer_access_token(label_studio, text_project, pat):
    project_id, tasks, expect = text_project
    claims = jwt.decode(pat, options={"verify_signature": False})
    assert claims["token_type"] == "refresh"

    client = LabelStudioClient(label_studio.url, pat)
    client.check()
    labeled = {t.task_id: t for t in client.labeled_tasks(project_id)}
    assert labeled[tasks["updated"]].annotation_id == expect["updated"]
    assert labeled[tasks["single"]].annotation_id == expect["single"]
    assert tasks["unlabeled"] not in labeled

    headers = client.auth_headers()
    assert set(headers) == {"Authorization"}
    scheme, access = headers["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    assert access != pat
    assert jwt.decode(access, options={"verify_signature": False})["token_type"] == "access"
    # the access token is what Label Studio accepts on its own
    r = requests.get(f"{label_studio.url}/api/projects/{project_id}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    # the refresh token itself is no Bearer token
    r = requests.get(f"{label_studio.url}/api/projects/{project_id}", headers={"Authorization": f"Bearer {pat}"},
                     timeout=30)
    assert r.status_code == 401


# ---------------------------------------------------------------------------------------------------------------
# 4. media uploaded to Label Studio
# ---------------------------------------------------------------------------------------------------------------


def _tiny_png() -> bytes:
    from PIL import Image

    img = Image.new("RGB", (4, 3), (255, 255, 255))
    img.putpixel((1, 1), (200, 10, 10))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def uploaded_image(label_studio, sdk):
    """An image project with one task made by uploading a PNG through the import API.

    Returns:
        (the task's `image` value, a /data/upload/... path; the PNG's bytes)
    """
    project = sdk.projects.create(title="labelloop e2e: uploads", label_config=IMAGE_CONFIG)
    png = _tiny_png()
    upload(label_studio, project.id, {"dot.png": png})
    tasks = list(sdk.tasks.list(project=project.id))
    assert len(tasks) == 1
    yield tasks[0].data["image"], png
    sdk.projects.delete(project.id)


def _fetcher(tmp_path, url: str, auth=None, **settings) -> MediaFetcher:
    return MediaFetcher(Settings(media_cache_dir=tmp_path / "media", **settings), ls_url=url, auth=auth)


def test_uploaded_media_is_fetched_with_the_legacy_token(label_studio, uploaded_image, tmp_path):
    path, png = uploaded_image
    assert path.startswith("/data/upload/") and path.endswith(".png"), path
    client = LabelStudioClient(label_studio.url, label_studio.token)
    fetcher = _fetcher(tmp_path, label_studio.url, auth=client.auth_headers)
    assert fetcher.is_url(path)
    local = fetcher.fetch(path)
    assert local.read_bytes() == png
    assert local.suffix == ".png" and local.is_relative_to(tmp_path / "media")
    # the same file named by its absolute URL
    assert fetcher.fetch(label_studio.url + path).read_bytes() == png


def test_uploaded_media_is_fetched_with_a_personal_access_token(label_studio, uploaded_image, pat, tmp_path):
    path, png = uploaded_image
    client = LabelStudioClient(label_studio.url, pat)
    assert _fetcher(tmp_path, label_studio.url, auth=client.auth_headers).fetch(path).read_bytes() == png


def test_uploaded_media_without_auth_fails_clearly(label_studio, uploaded_image, tmp_path):
    path, _ = uploaded_image
    fetcher = _fetcher(tmp_path, label_studio.url)
    with pytest.raises(MediaError) as err:
        fetcher.fetch(path)
    message = str(err.value)
    assert path in message and "401" in message and "LABEL_STUDIO_API_KEY" in message, message
    assert not list((tmp_path / "media").glob("*")), "a refused download must leave nothing in the cache"


def test_uploaded_media_with_a_wrong_token_fails_clearly(label_studio, uploaded_image, tmp_path):
    path, _ = uploaded_image
    bad = "0123456789abcdef0123456789abcdef01234567"
    fetcher = _fetcher(tmp_path, label_studio.url, auth=lambda: {"Authorization": f"Token {bad}"})
    with pytest.raises(MediaError) as err:
        fetcher.fetch(path)
    message = str(err.value)
    assert "401" in message and "refused the API key" in message and bad not in message, message


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal secret")

    def log_message(self, *args):
        pass


@pytest.fixture
def other_local_server():
    """A plain HTTP server on another local port that records the requests it gets."""
    _Recorder.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    server.shutdown()
    server.server_close()


def test_ssrf_guard_refuses_other_local_ports(label_studio, other_local_server, tmp_path):
    other, hits = other_local_server
    client = LabelStudioClient(label_studio.url, label_studio.token)
    fetcher = _fetcher(tmp_path, label_studio.url, auth=client.auth_headers)
    for url in (f"{other}/secret", f"{other}/data/upload/1/x.png", "http://localhost:" + other.rsplit(":", 1)[1]):
        with pytest.raises(MediaNotAllowed, match="neither Label Studio's nor in ALLOWED_MEDIA_HOSTS"):
            fetcher.fetch(url)
    assert hits == [], "a refused URL must not be requested at all"
    # Label Studio is known by its origin (host and port): the same server under another name is not trusted
    ls_port = label_studio.url.rsplit(":", 1)[1]
    with pytest.raises(MediaNotAllowed):
        fetcher.fetch(f"http://localhost:{ls_port}/data/upload/1/x.png")

    # allow-listing the host lets it through, without Label Studio's token
    allowed = _fetcher(tmp_path, label_studio.url, auth=client.auth_headers, allowed_hosts=("127.0.0.1",))
    assert allowed.fetch(f"{other}/public").read_bytes() == b"internal secret"
    assert hits == [("/public", None)]
