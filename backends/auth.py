"""Optional HTTP basic auth between Label Studio and a backend."""
from __future__ import annotations

import base64
import hmac


def check_basic_auth(header: str | None, user: str, password: str) -> bool:
    """True when the `Authorization` header carries `user`:`password`.

    Both parts are always compared, each in constant time, so the answer's timing says nothing about which part
    was wrong or how much of it matched.
    """
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    given_user, sep, given_pass = decoded.partition(":")
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    pass_ok = hmac.compare_digest(given_pass.encode(), password.encode())
    return bool(sep) and user_ok and pass_ok
