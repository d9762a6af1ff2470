"""Optional HTTP basic auth between Label Studio and a backend, with a brake on password guessing."""
from __future__ import annotations

import base64
import hmac
import math
import threading
import time
from collections import OrderedDict, deque

CHALLENGE = 'Basic realm="labelloop", charset="UTF-8"'  # RFC 7617: tells clients which scheme to answer with


def check_basic_auth(header: str | None, user: str, password: str) -> bool:
    """True when the `Authorization` header carries `user`:`password`.

    The scheme name is case-insensitive (RFC 7235). Both parts are always compared, each in constant time, so the
    answer's timing says nothing about which part was wrong or how much of it matched.
    """
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    given_user, sep, given_pass = decoded.partition(":")
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    pass_ok = hmac.compare_digest(given_pass.encode(), password.encode())
    return bool(sep) and user_ok and pass_ok


class FailedAttempts:
    """Counts failed logins per client; after `limit` of them within `window_s`, the client waits.

    Kept in the process (each gunicorn worker counts for itself: the brake is `limit` × workers per window, still
    far from what guessing a password needs). At most `max_clients` are remembered, the stalest dropped first.
    """

    def __init__(self, limit: int = 10, window_s: float = 60.0, max_clients: int = 10_000):
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            times = self._recent(client, time.monotonic())
            if times is None or len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[0] + self.window_s - time.monotonic()))

    def failed(self, client: str) -> None:
        """Record one failed attempt of `client`."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque(maxlen=self.limit)
            times.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
