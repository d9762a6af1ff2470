"""Logging set-up that keeps secrets out of log lines, tracebacks included."""
from __future__ import annotations

import logging
import re
from typing import Iterable

_PATTERNS = [
    re.compile(r"(Authorization:?\s*['\"]?(?:Token|Bearer|Basic)\s+)[^\s'\",}]+", re.I),
    re.compile(r"((?:access_token|api_key|token|password|refresh)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+", re.I),
]
_MIN_SECRET = 4  # shorter values would blank out ordinary words


class RedactSecrets(logging.Filter):
    """Replaces known secret values and token-looking fields with `***` in every record's message, and in its
    traceback and stack (an exception's text may quote a URL or a header)."""

    def __init__(self, secrets: Iterable[str] | None = None):
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets or [])

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these values too (e.g. a project's token from /setup)."""
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= _MIN_SECRET and secret not in self.secrets:
                self.secrets.append(secret)
        self.secrets.sort(key=len, reverse=True)  # a secret containing another is replaced whole

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        for pattern in _PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # formatted here, once, as the handler's Formatter would; it then prints exc_text as it is
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _filters() -> list[RedactSecrets]:
    return [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, RedactSecrets)]


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    """Configure the root logger once, with the secret filter on its handlers."""
    root = logging.getLogger()
    if not _filters():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
        handler.addFilter(RedactSecrets(secrets))
        root.addHandler(handler)
    else:
        for f in _filters():
            f.secrets = []
            f.add(secrets or [])
    root.setLevel(level.upper())


def add_secrets(secrets: Iterable[str]) -> None:
    """Add values to redact from now on, in every handler `setup_logging` configured."""
    secrets = list(secrets)
    for f in _filters():
        f.add(secrets)
