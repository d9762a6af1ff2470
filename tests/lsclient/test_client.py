"""The shared Label Studio client on its own (its default error), and as the backends and the CLI wrap it, against
the small HTTP server of tests/backends/test_ls_client.py that answers like Label Studio's API."""
from __future__ import annotations

import pytest

from backends.exceptions import LabelStudioUnavailable
from backends.ls_client import LabelStudioClient as BackendsClient
from lsclient import LabelStudioClient, LabelStudioError, newest_annotation
from ops.services import free_port
from scripts.labelloop_sync.connection import LS
from scripts.labelloop_sync.errors import SyncError
from tests.backends.test_ls_client import TOKEN, ann, server, url  # noqa: F401  (server and url are fixtures)


def test_one_client_raises_each_callers_error(url):  # noqa: F811
    for cls, error in ((LabelStudioClient, LabelStudioError), (BackendsClient, LabelStudioUnavailable),
                       (LS, SyncError)):
        client = cls(url, "wrong-key-987654")
        with pytest.raises(error, match=r"refused the API key \(401\) while checking the connection") as e:
            client.check()
        assert "wrong-key-987654" not in str(e.value)
        assert cls(url, TOKEN).auth_headers() == {"Authorization": f"Token {TOKEN}"}
    with pytest.raises(SyncError) as e:
        LS(url, "wrong-key-987654").check()
    assert e.value.code == 1


def test_url_without_scheme_and_with_a_trailing_slash(server, url):  # noqa: F811
    client = LabelStudioClient(url.removeprefix("http://") + "/", TOKEN)
    assert client.url == url and repr(client) == f"LabelStudioClient({url!r})"
    client.check()
    assert server.requests[-1][0] == "/api/projects/"


def test_raw_requests_carry_the_key_and_fail_clearly(server, url):  # noqa: F811
    client = LabelStudioClient(url, TOKEN)
    assert client.raw("GET", "/api/projects/7/", "reading a project").json()["id"] == 7
    assert server.requests[-1][2] == f"Token {TOKEN}"
    with pytest.raises(LabelStudioError, match=r"^Label Studio answered 404 while downloading x\.png: .*Not found"):
        client.raw("GET", "/data/upload/x.png", "downloading x.png")
    with pytest.raises(LabelStudioError, match=r"refused the API key \(401\) while downloading"):
        LabelStudioClient(url, "wrong-key-987654").raw("GET", "/api/projects/7/", "downloading")


def test_a_page_that_is_not_label_studio_is_named_so(url):  # noqa: F811
    with pytest.raises(LabelStudioError, match=r"gave an unreadable answer while checking the connection \(is the URL "
                                               r"right\?\)"):
        LabelStudioClient(url + "/not-label-studio", TOKEN).check()


def test_unreachable_and_timeouts_name_the_address_not_the_key():
    address = f"http://127.0.0.1:{free_port()}"
    client = LabelStudioClient(address, TOKEN, timeout=5)
    for call in (client.check, lambda: client.raw("GET", "/data/upload/x", "downloading x", timeout=5)):
        with pytest.raises(LabelStudioError, match=f"^cannot reach Label Studio at {address}: ") as e:
            call()
        assert TOKEN not in str(e.value)


def test_newest_annotation_is_the_newest_not_cancelled():
    older, newer, cancelled = ann(1, "2024-01-01T00:00:00Z"), ann(2, "2024-01-01T00:00:00.5Z"), \
        ann(3, "2024-02-01T00:00:00Z", cancelled=True)
    assert newest_annotation([newer, cancelled, older, "not an annotation"]) is newer
    assert newest_annotation([cancelled]) is None and newest_annotation(None) is None
