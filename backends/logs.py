"""Logging set-up that keeps secrets out of log lines."""
from __future__ import annotations

import logging
import re

_PATTERNS = [
    re.compile(r"(Authorization:?\s*['\"]?(?:Token|Bearer|Basic)\s+)[^\s'\",}]+", re.I),
    re.compile(r"((?:access_token|api_key|token|password|refresh)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+", re.I),
]


class RedactSecrets(logging.Filter):
    """Replaces known secret values and token-looking fields in every record's message with `***`."""

    def __init__(self, secrets: list[str] | None = None):
        super().__init__()
        self.secrets = [s for s in (secrets or []) if s and len(s) >= 4]

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
        return True


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    """Configure the root logger once, with the secret filter on its handlers."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactSecrets) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"))
        handler.addFilter(RedactSecrets(secrets))
        root.addHandler(handler)
    else:
        for h in root.handlers:
            for f in h.filters:
                if isinstance(f, RedactSecrets):
                    f.secrets = [s for s in (secrets or []) if s and len(s) >= 4]
    root.setLevel(level.upper())
