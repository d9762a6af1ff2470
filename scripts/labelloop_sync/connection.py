"""Label Studio for the commands: the shared `lsclient` client, with every failure a one-line `SyncError`."""
from __future__ import annotations

from lsclient import LabelStudioClient

from .errors import SyncError


class LS(LabelStudioClient):
    """A connected Label Studio: `sdk` for the API, `raw()` for file transfers, `errors()` around SDK calls."""

    error_type = SyncError

    def __init__(self, url: str, api_key: str, timeout: float = 120):
        if not url:
            raise SyncError("no Label Studio URL: pass --url or set LABEL_STUDIO_URL", code=2)
        if not api_key:
            raise SyncError("no API key: pass --api-key or set LABEL_STUDIO_API_KEY", code=2)
        super().__init__(url, api_key, timeout=timeout)
