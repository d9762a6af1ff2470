"""Label Studio through label-studio-sdk, with every failure turned into a one-line `SyncError`."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

import httpx
import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from .errors import SyncError


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        if body.get("validation_errors"):
            return json.dumps(body["validation_errors"])[:300]
        return str(body.get("detail") or "")[:300]
    return str(body or "")[:300]


class LS:
    """A connected Label Studio: `sdk` for the API, `session` for raw file transfers, `errors()` around calls."""

    def __init__(self, url: str, api_key: str, timeout: float = 120):
        if not url:
            raise SyncError("no Label Studio URL: pass --url or set LABEL_STUDIO_URL", code=2)
        if not api_key:
            raise SyncError("no API key: pass --api-key or set LABEL_STUDIO_API_KEY", code=2)
        self.url = (url if "://" in url else "http://" + url).rstrip("/")
        self._key = api_key
        with self.errors("connecting"):
            self.sdk = LabelStudio(base_url=self.url + "/", api_key=api_key, timeout=timeout)
        self.session = requests.Session()
        self.session.trust_env = False  # Label Studio is usually local; a proxy variable must not reroute it

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def headers(self) -> dict[str, str]:
        """The Authorization header for raw requests (a personal access token is refreshed by the SDK)."""
        with self.errors("refreshing the access token"):
            headers = self.sdk._client_wrapper.get_headers()
        return {k: v for k, v in headers.items() if k.lower() == "authorization"}

    def check(self) -> None:
        """Fail with a clear message when Label Studio is unreachable or refuses the key."""
        with self.errors("checking the connection"):
            self.sdk.projects.list(page_size=1)

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Translate SDK and HTTP failures while `doing` into a `SyncError` without the key in it."""
        try:
            yield
        except ApiError as e:
            detail = _detail(e.body)
            detail = f": {self._redact(detail)}" if detail else ""
            if e.status_code in (401, 403):
                raise SyncError(f"Label Studio refused the API key ({e.status_code}) while {doing}{detail}") from None
            raise SyncError(f"Label Studio answered {e.status_code} while {doing}{detail}") from None
        except (httpx.TimeoutException, requests.Timeout):
            raise SyncError(f"cannot reach Label Studio at {self.url}: timed out while {doing}") from None
        except (httpx.HTTPError, requests.ConnectionError) as e:
            reason = self._redact(str(e))[:200] or type(e).__name__
            raise SyncError(f"cannot reach Label Studio at {self.url} while {doing}: {reason}") from None
        except ValueError as e:
            if "JSON" in str(e) or "Expecting value" in str(e):
                raise SyncError(f"Label Studio at {self.url} gave an unreadable answer while {doing} "
                                "(is the URL right?)") from None
            raise

    def raw(self, method: str, path: str, doing: str, **kwargs: Any) -> requests.Response:
        """A raw request to Label Studio (file uploads, downloads), failing clearly on errors."""
        kwargs.setdefault("timeout", 300)
        with self.errors(doing):
            r = self.session.request(method, self.url + path, headers={**self.headers(), **kwargs.pop("headers", {})},
                                     **kwargs)
        if r.status_code in (401, 403):
            raise SyncError(f"Label Studio refused the API key ({r.status_code}) while {doing}")
        if r.status_code >= 400:
            raise SyncError(f"Label Studio answered {r.status_code} while {doing}: {self._redact(r.text)[:300]}")
        return r
