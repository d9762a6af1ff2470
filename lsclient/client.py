"""One client for Label Studio's API, on label-studio-sdk.

The SDK handles both kinds of API key: a legacy token (`Authorization: Token ...`) and a personal access token (a
JWT refresh token it exchanges for short-lived access tokens, `Authorization: Bearer ...`). Every failure becomes one
readable line without the key in it, raised as `error_type` (callers pick their own error class).
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, ClassVar, Iterator

import httpx
import jwt
import pydantic
import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError


class LabelStudioError(Exception):
    """Label Studio could not be reached, refused the key, or answered with an error."""


def _detail(body: Any) -> str:
    """What an error answer says, briefly: DRF's validation errors or its "detail"."""
    if isinstance(body, dict):
        if body.get("validation_errors"):
            return json.dumps(body["validation_errors"])[:300]
        return str(body.get("detail") or "")[:300]
    return str(body or "")[:300]


class LabelStudioClient:
    """A connected Label Studio: `sdk` for the API, `raw()` for file transfers, `errors()` around SDK calls.

    Attributes:
        error_type: the exception class every failure is raised as (a subclass sets its own, e.g. one that
            carries an HTTP status or an exit code); it is called with the message only.
    """

    error_type: ClassVar[type[Exception]] = LabelStudioError

    def __init__(self, url: str, api_key: str, timeout: float = 30):
        """
        Args:
            url: Label Studio's base URL ("http://" is assumed when no scheme is given), with or without a path
                prefix (https://host/ls).
            api_key: a legacy token or a personal access token.
            timeout: seconds per API request.
        """
        self.url = (url if "://" in url else "http://" + url).rstrip("/")
        self._api_key = api_key
        self._session: requests.Session | None = None
        with self.errors("connecting"):
            # The trailing slash keeps a path prefix (https://host/ls/) when the SDK urljoins the token refresh
            # endpoint; its other requests strip it again.
            self.sdk = LabelStudio(base_url=self.url + "/", api_key=api_key, timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for raw requests to Label Studio (a personal access token is refreshed).

        Returns:
            {"Authorization": "Token ..."} or {"Authorization": "Bearer ..."}.
        """
        with self.errors("refreshing the access token"):
            # the SDK has no public accessor for its current headers; this one also refreshes an expired token
            headers = self.sdk._client_wrapper.get_headers()
        return {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")}

    def check(self) -> None:
        """Raise `error_type` when Label Studio is unreachable or refuses the key."""
        with self.errors("checking the connection"):
            self.sdk.projects.list(page_size=1)

    def raw(self, method: str, path: str, doing: str, **kwargs: Any) -> requests.Response:
        """A request outside the SDK (file uploads and downloads), with the key, failing clearly on errors.

        Args:
            method: "GET", "POST", ...
            path: a path on Label Studio ("/data/upload/...", "/api/...").
            doing: what the request is for, for the error message.
            kwargs: passed to `requests` (timeout defaults to 300 s).
        """
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # Label Studio is usually local; a proxy variable must not reroute it
        kwargs.setdefault("timeout", 300)
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        with self.errors(doing):
            r = self._session.request(method, self.url + path, headers=headers, **kwargs)
        if r.status_code in (401, 403):
            raise self.error_type(f"Label Studio refused the API key ({r.status_code}) while {doing}")
        if r.status_code >= 400:
            raise self.error_type(f"Label Studio answered {r.status_code} while {doing}: {self.redact(r.text)[:300]}")
        return r

    def redact(self, text: str) -> str:
        """`text` with the API key replaced by ***."""
        return text.replace(self._api_key, "***") if self._api_key else text

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn SDK and HTTP failures while `doing` into `error_type`, without the key in the message."""
        error = self.error_type
        try:
            yield
        except ApiError as e:
            status = e.status_code or 0
            if 200 <= status < 300:  # the SDK raises this for a 2xx answer that is not JSON
                raise error(f"Label Studio at {self.url} gave an unreadable answer while {doing} "
                            "(is the URL right?)") from None
            detail = _detail(e.body)
            detail = f": {self.redact(detail)}" if detail else ""
            if status in (401, 403):
                raise error(f"Label Studio refused the API key ({status}) while {doing}{detail}") from None
            raise error(f"Label Studio answered {status} while {doing}{detail}") from None
        except (json.JSONDecodeError, pydantic.ValidationError):
            # something answered that is not Label Studio's API (before RequestException: requests' JSON error
            # is one)
            raise error(f"Label Studio at {self.url} gave an unreadable answer while {doing} "
                        "(is the URL right?)") from None
        except (httpx.TimeoutException, requests.Timeout):
            raise error(f"cannot reach Label Studio at {self.url}: timed out while {doing}") from None
        except (httpx.HTTPError, requests.RequestException) as e:
            reason = self.redact(str(e))[:200] or type(e).__name__
            raise error(f"cannot reach Label Studio at {self.url}: {reason} (while {doing})") from None
        except jwt.PyJWTError:
            raise error("Label Studio API key looks like a JWT but cannot be read") from None
